/* log.h - levelled logging to stderr, one line per event.
 *
 * sg_log() checks the level before evaluating its arguments (redis'
 * serverLog). Lines look like
 *   2026-11-23T03:20:01.123Z stompgate[123] INFO  [sess 5f..] message
 * Every line about a connection should carry its session id via sg_log_sess().
 */
#ifndef SG_LOG_H
#define SG_LOG_H

enum sg_log_level { SG_LOG_DEBUG = 0, SG_LOG_INFO, SG_LOG_WARN, SG_LOG_ERROR, SG_LOG_NONE };

extern volatile int sg_log_level_current;

/* Program name used in the log prefix (borrowed; must outlive logging). */
void sg_log_init(const char *progname, enum sg_log_level level);
/* Parses "debug" | "info" | "warn" | "error" | "none" (any case). Returns
 * the enum sg_log_level value (>= 0), or SG_ECONFIG if s is none of them. */
int sg_log_level_parse(const char *s);
/* Routes libevent's own messages through sg_log. */
void sg_log_hook_libevent(void);

void sg_log_write(enum sg_log_level level, const char *sess, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sg_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((int)(level) >= sg_log_level_current) sg_log_write((level), NULL, __VA_ARGS__);        \
    } while (0)
#define sg_log_sess(level, sess, ...)                                                              \
    do {                                                                                           \
        if ((int)(level) >= sg_log_level_current) sg_log_write((level), (sess), __VA_ARGS__);      \
    } while (0)

#endif
