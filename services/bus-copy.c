/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "services/bus-copy.h"

#include <stdbool.h>

int bus_copy_args(sd_bus_message *dst, sd_bus_message *src) {
        for (;;) {
                const char *contents;
                char type;
                int r = sd_bus_message_peek_type(src, &type, &contents);
                if (r < 0)
                        return r;
                if (r == 0)
                        return 0;
                if (type == SD_BUS_TYPE_ARRAY && contents[0] == SD_BUS_TYPE_BYTE && contents[1] == 0) {
                        const void *p;
                        size_t n;
                        r = sd_bus_message_read_array(src, 'y', &p, &n);
                        if (r >= 0)
                                r = sd_bus_message_append_array(dst, 'y', p, n);
                } else
                        r = sd_bus_message_copy(dst, src, false); /* one complete argument */
                if (r < 0)
                        return r;
        }
}
