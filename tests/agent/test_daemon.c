/* Placeholder until the daemon suite lands. */
#include <criterion/criterion.h>
