/* queue_compat.h - <sys/queue.h> plus the BSD macros glibc's copy lacks. */
#ifndef SG_QUEUE_COMPAT_H
#define SG_QUEUE_COMPAT_H

#include <sys/queue.h>

#ifndef STAILQ_FOREACH_SAFE
#define STAILQ_FOREACH_SAFE(var, head, field, tvar)                                                \
    for ((var) = STAILQ_FIRST(head); (var) && ((tvar) = STAILQ_NEXT(var, field), 1); (var) = (tvar))
#endif

#ifndef STAILQ_REMOVE_AFTER
#define STAILQ_REMOVE_AFTER(head, elm, field)                                                      \
    do {                                                                                           \
        if ((STAILQ_NEXT(elm, field) = STAILQ_NEXT(STAILQ_NEXT(elm, field), field)) == NULL)       \
            (head)->stqh_last = &STAILQ_NEXT(elm, field);                                          \
    } while (0)
#endif

#endif
