// The NVIDIA libraries dropnet can use on a GPU (cuBLASLt, cuSPARSE, cuDNN), opened at run time by
// soname with dlopen, never linked: the extension imports and trains on a machine without them (or
// without any GPU, driver or CUDA library), and only a call that needs one says which is missing.
// Each library is opened once per process, on first use, thread-safely; a failure is remembered
// with its reason. Plain C++ (no CUDA header), built in every build, so its tests run everywhere.
#pragma once
#include <string>
#include <vector>

namespace dropnet {
namespace cuda {

// A shared library opened by the first soname of a list that dlopen accepts.
class DynamicLibrary {
 public:
  // Tries `sonames` in order (dlopen, RTLD_NOW | RTLD_LOCAL; the dynamic loader's search path,
  // LD_LIBRARY_PATH included, and a library already loaded under that soname, e.g. by PyTorch).
  explicit DynamicLibrary(const std::vector<std::string>& sonames);
  ~DynamicLibrary();
  DynamicLibrary(const DynamicLibrary&) = delete;
  DynamicLibrary& operator=(const DynamicLibrary&) = delete;

  bool loaded() const { return handle_ != nullptr; }
  // The soname that opened, empty when none did.
  const std::string& soname() const { return soname_; }
  // Empty when loaded; otherwise every soname tried and the loader's message for each.
  const std::string& reason() const { return reason_; }
  // The address of `name`, or nullptr (with the reason in *why when given) when the library is not
  // loaded or lacks the symbol.
  void* symbol(const char* name, std::string* why = nullptr) const;
  // *fn = the function `name`; when it is missing *fn is null and *reason, if still empty, says
  // why, so a list of binds reports its first failure.
  template <class F>
  void bind(const char* name, F* fn, std::string* reason) const {
    std::string why;
    *fn = reinterpret_cast<F>(symbol(name, &why));
    if (!*fn && reason->empty()) *reason = why;
  }

 private:
  void* handle_ = nullptr;
  std::string soname_, reason_;
};

enum class NvidiaLibrary : int { cublaslt = 0, cusparse = 1, cudnn = 2 };

// The sonames tried for a library, newest first (CUDA 13's, then CUDA 12's, the toolkits this
// build's runtime can sit beside; cuDNN 9, then 8).
std::vector<std::string> library_sonames(NvidiaLibrary lib);
const char* library_name(NvidiaLibrary lib);

// The process's copy of `lib`, opened on the first call (thread-safe, once); never unloaded.
const DynamicLibrary& nvidia_library(NvidiaLibrary lib);

}  // namespace cuda
}  // namespace dropnet
