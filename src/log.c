/* log.c - levelled logging to stderr, one line per event (see log.h). */
#include "log.h"
#include "error.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

volatile int sg_log_level_current = SG_LOG_INFO;
static const char *log_prog = "stompgate";

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void sg_log_init(const char *progname, enum sg_log_level level)
{
    if (progname) log_prog = progname;
    sg_log_level_current = level;
}

int sg_log_level_parse(const char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "none"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, names[i]) == 0) return i;
    return SG_ECONFIG;
}

void sg_log_write(enum sg_log_level level, const char *sess, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s[%d] %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), log_prog, (int)getpid(),
                     level_names[level < SG_LOG_NONE ? level : SG_LOG_ERROR]);
    if (sess && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, "[%s] ", sess);
    if (n > 0 && (size_t)n < sizeof line) {
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0) n += m;
    }
    if (n < 0) return;
    if ((size_t)n >= sizeof line - 1) n = (int)sizeof line - 2;
    /* one line per event: fold embedded newlines so a peer can't forge lines */
    for (int i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n); /* one write: lines never interleave */
    (void)w;
}

static void libevent_log_cb(int severity, const char *msg)
{
    enum sg_log_level l = severity == EVENT_LOG_DEBUG  ? SG_LOG_DEBUG
                          : severity == EVENT_LOG_MSG  ? SG_LOG_INFO
                          : severity == EVENT_LOG_WARN ? SG_LOG_WARN
                                                       : SG_LOG_ERROR;
    sg_log(l, "libevent: %s", msg);
}

void sg_log_hook_libevent(void)
{
    event_set_log_callback(libevent_log_cb);
}
