/* The JIT: loads an object file made by codegen.c into an ORC LLJIT instance and looks
 * up the entry points. The JIT's target machine is built for the host CPU's name and
 * features, like the optimizer's; symbols the object needs from outside (libm, memset)
 * resolve against this process.
 */
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Core.h>
#include <llvm/Config/llvm-config.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/OrcEE.h>
#include <llvm-c/ExecutionEngine.h>

#include "dc.h"
#include "target.h"

struct Jit {
	LLVMOrcLLJITRef lljit;
};

static int llvm_error(Diags *d, LLVMErrorRef e, const char *what)
{
	char *msg = LLVMGetErrorMessage(e);
	error_at(d, (SrcLoc){0}, "%s: %s", what, msg);
	LLVMDisposeErrorMessage(msg);
	return -1;
}

rt_fn jit_lookup(Jit *j, const char *name)
{
	LLVMOrcExecutorAddress addr = 0;
	LLVMErrorRef e = LLVMOrcLLJITLookup(j->lljit, &addr, name);
	if (e) { /* a function the object does not have */
		LLVMConsumeError(e);
		return NULL;
	}
	return (rt_fn)(uintptr_t)addr;
}

/* DESCENT_PERF=1: tells perf where every kernel is (run under `perf record -k 1`, then
 * `perf inject --jit`), through the linking layer that supports event listeners. */
static LLVMOrcObjectLayerRef perf_layer(void *ctx, LLVMOrcExecutionSessionRef es,
                                        const char *triple)
{
	(void)ctx, (void)triple;
	LLVMOrcObjectLayerRef l =
	    LLVMOrcCreateRTDyldObjectLinkingLayerWithSectionMemoryManager(es);
	LLVMJITEventListenerRef perf = LLVMCreatePerfJITEventListener();
	if (perf)
		LLVMOrcRTDyldObjectLinkingLayerRegisterJITEventListener(l, perf);
	return l;
}

Jit *jit_load(Diags *d, const ObjCode *obj, rt_fn fns[FN_COUNT])
{
	CodegenOpts host = {.opt_level = 3};
	LLVMTargetMachineRef tm = target_machine(d, &host);
	if (!tm)
		return NULL;
	Jit *j = calloc(1, sizeof *j);
	if (!j)
		die("out of memory");
	LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
	/* the builder takes the target machine builder, which takes tm */
	LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(
	    builder, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
	const char *perf = getenv("DESCENT_PERF");
	if (perf && *perf && strcmp(perf, "0"))
		LLVMOrcLLJITBuilderSetObjectLinkingLayerCreator(builder, perf_layer,
		                                                NULL);
	LLVMErrorRef e = LLVMOrcCreateLLJIT(&j->lljit, builder); /* consumes builder */
	if (e) {
		llvm_error(d, e, "cannot create the JIT");
		free(j);
		return NULL;
	}
	LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(j->lljit);
	LLVMOrcDefinitionGeneratorRef gen;
	e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
	    &gen, LLVMOrcLLJITGetGlobalPrefix(j->lljit), NULL, NULL);
	if (e)
		goto fail;
	LLVMOrcJITDylibAddGenerator(jd, gen); /* jd owns gen */
	/* the runtime's thread pool and clock, by address: they need not be exported by
	 * the program */
#if LLVM_VERSION_MAJOR < 15
	LLVMJITCSymbolMapPair rt[2] =
	{ /* its older name */
#else
	LLVMOrcCSymbolMapPair rt[2] = {
#endif
	  {LLVMOrcLLJITMangleAndIntern(j->lljit, "rt_parallel_for"),
	   {(LLVMOrcExecutorAddress)(uintptr_t)rt_parallel_for,
	    {LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable, 0}}},
	  {LLVMOrcLLJITMangleAndIntern(j->lljit, "rt_ticks"),
	   {(LLVMOrcExecutorAddress)(uintptr_t)rt_ticks,
	    {LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable, 0}}}
	};
	e = LLVMOrcJITDylibDefine(jd, LLVMOrcAbsoluteSymbols(rt, 2));
	if (e)
		goto fail;
	for (int i = 0; i < MAXSHARDS; i++) { /* the object, or its parts */
		const void *data = i ? obj->more[i - 1] : obj->data;
		size_t size = i ? obj->more_size[i - 1] : obj->size;
		if (!data)
			continue;
		LLVMMemoryBufferRef mb =
		    LLVMCreateMemoryBufferWithMemoryRangeCopy(data, size, "descent.o");
		e = LLVMOrcLLJITAddObjectFile(j->lljit, jd, mb); /* consumes mb */
		if (e)
			goto fail;
	}
	for (int k = 0; fns && k < FN_COUNT; k++)
		fns[k] = jit_lookup(j, fn_names[k]);
	return j;
fail:
	llvm_error(d, e, "cannot load the compiled model");
	jit_free(j);
	return NULL;
}

void jit_free(Jit *j)
{
	if (!j)
		return;
	if (j->lljit)
		LLVMOrcDisposeLLJIT(j->lljit);
	free(j);
}
