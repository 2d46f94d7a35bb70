#include "sample_util.h"
AFD_EXPORT const char *AFD_CALL Name(void) { return "x"; }
