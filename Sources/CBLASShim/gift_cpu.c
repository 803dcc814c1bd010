// cpuid and xgetbv: see include/gift_cpu.h.
#include "gift_cpu.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static gift_cpu_info info;
static char flags[160];
static pthread_once_t once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) || defined(__i386__)
static unsigned long long xgetbv0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void detect(void) {
    unsigned int a, b, c, d, max;
    __cpuid(0, max, b, c, d);
    memcpy(info.vendor, &b, 4); memcpy(info.vendor + 4, &d, 4); memcpy(info.vendor + 8, &c, 4);
    __cpuid(1, a, b, c, d);
    int fam = (a >> 8) & 0xf, mod = (a >> 4) & 0xf;
    if (fam == 0xf) fam += (a >> 20) & 0xff;
    if (fam == 0x6 || fam >= 0xf) mod += ((a >> 16) & 0xf) << 4;
    info.family = fam; info.model = mod; info.stepping = a & 0xf;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    info.fma = (c >> 12) & 1; info.f16c = (c >> 29) & 1;
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    int ymmOS = (xcr0 & 0x6) == 0x6, zmmOS = (xcr0 & 0xe6) == 0xe6, tileOS = (xcr0 & 0x60000) == 0x60000;
    if (max >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        info.avx2 = avx && ymmOS && ((b >> 5) & 1);
        int f = (b >> 16) & 1, dq = (b >> 17) & 1, cd = (b >> 28) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
        info.avx512 = zmmOS && f && dq && cd && bw && vl;
        info.avx512_vnni = info.avx512 && ((c >> 11) & 1);
        info.avx512_fp16 = info.avx512 && ((d >> 23) & 1);
        info.amx = tileOS && ((d >> 24) & 1) && ((d >> 22) & 1);
        unsigned int a1, b1, c1, d1;
        __cpuid_count(7, 1, a1, b1, c1, d1);
        info.avx512_bf16 = info.avx512 && ((a1 >> 5) & 1);
    }
    info.fma = info.fma && info.avx2;
    unsigned int ext;
    __cpuid(0x80000000, ext, b, c, d);
    if (ext >= 0x80000004) {
        unsigned int r[12];
        for (int i = 0; i < 3; i++) __cpuid(0x80000002 + i, r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]);
        memcpy(info.brand, r, 48);
        // trim the padding some CPUs put around the name
        char *s = info.brand; while (*s == ' ') s++;
        memmove(info.brand, s, strlen(s) + 1);
        for (size_t n = strlen(info.brand); n > 0 && info.brand[n - 1] == ' '; n--) info.brand[n - 1] = 0;
    }
}
#else
static void detect(void) { strcpy(info.vendor, "unknown"); strcpy(info.brand, "not x86-64"); }
#endif

static void init(void) {
    detect();
    snprintf(flags, sizeof flags, "%s%s%s%s%s%s%s", info.avx2 ? "avx2 " : "", info.fma ? "fma " : "",
             info.avx512 ? "avx512 " : "", info.avx512_vnni ? "avx512_vnni " : "",
             info.avx512_bf16 ? "avx512_bf16 " : "", info.avx512_fp16 ? "avx512_fp16 " : "", info.amx ? "amx " : "");
    size_t n = strlen(flags);
    if (n > 0) flags[n - 1] = 0; else strcpy(flags, "no avx2");
}

const gift_cpu_info *gift_cpu(void) { pthread_once(&once, init); return &info; }
const char *gift_cpu_flags(void) { pthread_once(&once, init); return flags; }
