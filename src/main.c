/* main.c - stompgate: STOMP over WebSocket to RabbitMQ. */
#include "error.h"
#include "gw_config.h"
#include "log.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

int main(int argc, char **argv)
{
    static const struct sg_program prog = {
        .name = "stompgate",
        .summary = "Bridges browsers speaking STOMP 1.0-1.2 over WebSocket (ws/wss) to RabbitMQ "
                   "over AMQP 0-9-1,\nand serves the stock ticker page.",
        .env_prefix = SG_ENV_PREFIX,
        .default_file = SG_DEFAULT_CONFIG,
        .table = sg_gw_options,
        .check = sg_gw_config_check,
    };
    struct sg_gw_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int exit_code;
    if (sg_config_main(&prog, &cfg, argc, argv, &exit_code) != SG_OK) return exit_code;
    sg_log_init("stompgate", (enum sg_log_level)cfg.log_level);
    sg_log_hook_libevent();
    /* every connection is a descriptor: take the whole hard limit (a 1024
     * soft limit would cap a load test long before max_connections) */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)cfg.max_connections + 64 > rl.rlim_cur)
        sg_log(SG_LOG_WARN,
               "max_connections %lld is above what the descriptor limit %llu allows; "
               "connections beyond it will fail to be accepted",
               cfg.max_connections, (unsigned long long)rl.rlim_cur);
    int rc = sg_server_run(&cfg, argc, argv);
    sg_config_free(sg_gw_options, &cfg);
    return rc;
}
