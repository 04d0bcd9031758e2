// A no-op std::ios_base_library_init() for systems whose libstdc++ predates GCC 13.
// GCC 13 emits a call to this hook so that iostreams get initialised; older libstdc++ initialises
// them in its own static constructors, so doing nothing here is correct.
// See ../../docs/torchsharp-native-fix.md.
namespace std {
__attribute__((visibility("default"))) void ios_base_library_init() {}
}
