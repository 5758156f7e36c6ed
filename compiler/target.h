/* The host target machine, shared by codegen.c and jit.c (the only files, with aot.c,
 * that see LLVM types). */
#ifndef DC_TARGET_H
#define DC_TARGET_H
#include <llvm-c/TargetMachine.h>

#include "dc.h"

/* A target machine for o's triple, CPU and features, or for this host's triple, CPU
 * name and feature string when o gives none; NULL after an error in d. The caller
 * disposes of it. */
LLVMTargetMachineRef target_machine(Diags *d, const CodegenOpts *o);
#endif
