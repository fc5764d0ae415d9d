#include "dropnet/core/cpu_features.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>

#include "dropnet/core/error.h"

namespace dropnet {
namespace {

unsigned long long read_xcr0() {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned int eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  f.sse2 = edx & bit_SSE2;
  f.avx = ecx & bit_AVX;
  f.fma = ecx & bit_FMA;
  f.f16c = ecx & bit_F16C;
  const bool osxsave = ecx & bit_OSXSAVE;
  if (osxsave) {
    const unsigned long long xcr0 = read_xcr0();
    f.os_avx = (xcr0 & 0x6) == 0x6;               // SSE and AVX state
    f.os_avx512 = f.os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  }
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    f.avx2 = ebx & bit_AVX2;
    f.bmi2 = ebx & bit_BMI2;
    f.avx512f = ebx & bit_AVX512F;
    f.avx512dq = ebx & bit_AVX512DQ;
    f.avx512bw = ebx & bit_AVX512BW;
    f.avx512vl = ebx & bit_AVX512VL;
    f.avx512vnni = ecx & (1u << 11);
  }
  return f;
}

Isa detect_max_isa(const CpuFeatures& f) {
  if (f.os_avx512 && f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl && f.avx2 && f.fma &&
      f.bmi2)
    return Isa::avx512;
  if (f.os_avx && f.avx2 && f.fma && f.bmi2) return Isa::avx2;
  return Isa::scalar;
}

Isa initial_isa() {
  Isa isa = max_supported_isa();
  if (const char* env = std::getenv("DROPNET_ISA")) {
    if (*env) {
      // An environment asking for more than the CPU has gets what the CPU has.
      Isa want = parse_isa(env, "environment variable DROPNET_ISA");
      if (static_cast<int>(want) < static_cast<int>(isa)) isa = want;
    }
  }
  return isa;
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_isa())};
  return slot;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

Isa max_supported_isa() {
  static const Isa isa = detect_max_isa(cpu_features());
  return isa;
}

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

void set_isa(Isa isa) {
  DROPNET_CHECK(static_cast<int>(isa) <= static_cast<int>(max_supported_isa()), "isa: this CPU supports up to '",
                isa_name(max_supported_isa()), "', cannot use '", isa_name(isa), "'");
  active_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

Isa parse_isa(const std::string& name, const char* what) {
  if (name == "scalar") return Isa::scalar;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw ValueError(str_concat(what, ": expected one of 'scalar', 'avx2', 'avx512', got '", name, "'"));
}

}  // namespace dropnet
