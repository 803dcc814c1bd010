// What this x86-64 CPU can run, read with cpuid and xgetbv (instruction set and the OS's register
// state both checked: AVX-512 counts only when the OS saves the ZMM registers).
#ifndef GIFT_CPU_H
#define GIFT_CPU_H

typedef struct {
    char vendor[13];        // "GenuineIntel", "AuthenticAMD", ...
    char brand[49];         // "AMD EPYC 7B13 64-Core Processor", ...
    int family, model, stepping;   // display family and model (extended fields folded in)
    int avx2, fma, f16c;
    int avx512;             // AVX512 F, CD, BW, DQ and VL together (Skylake-SP's set)
    int avx512_vnni, avx512_bf16, avx512_fp16;
    int amx;                // AMX tile + bf16 in cpuid and tile state in XCR0 (Linux still asks per process)
} gift_cpu_info;

// Filled once, on first call.
const gift_cpu_info *gift_cpu(void);

// A short flags summary for logs: "avx2 fma avx512 avx512_bf16 ..." (only what gift's kernels care about).
const char *gift_cpu_flags(void);

#endif
