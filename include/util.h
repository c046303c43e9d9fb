/* util.h - small shared helpers. */
#ifndef SG_UTIL_H
#define SG_UTIL_H

#include <stdint.h>

/* Monotonic milliseconds (CLOCK_MONOTONIC). */
uint64_t sg_now_ms(void);

#endif
