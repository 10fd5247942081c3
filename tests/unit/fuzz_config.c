/* libFuzzer target for the configuration parser: any bytes must give a
 * config or an error, never a crash, leak or out-of-bounds access. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aeth_error err;
	struct aeth_config *cfg = NULL;
	char msg[600];

	if (aeth_config_parse((const char *)data, size, &cfg, &err) == 0)
		aeth_config_free(cfg);
	else
		aeth_error_format(&err, msg, sizeof(msg));
	return 0;
}
