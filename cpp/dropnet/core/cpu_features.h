// CPU feature detection and the ISA level kernels dispatch on.
// The active level is min(what CPUID and the OS allow, DROPNET_ISA from the environment,
// the last set_isa() call). Kernels read active_isa() once per call and pick their unit.
#pragma once
#include <string>

namespace dropnet {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

struct CpuFeatures {
  bool sse2 = false, avx = false, avx2 = false, fma = false, bmi2 = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false, avx512vnni = false;
  bool os_avx = false, os_avx512 = false;  // XCR0 says the OS saves the wide registers
};

const CpuFeatures& cpu_features();
Isa max_supported_isa();
Isa active_isa();
// Throws ValueError if the CPU cannot run `isa`.
void set_isa(Isa isa);
const char* isa_name(Isa isa);
// Parses "scalar" | "avx2" | "avx512"; throws ValueError naming `what` otherwise.
Isa parse_isa(const std::string& name, const char* what);

}  // namespace dropnet
