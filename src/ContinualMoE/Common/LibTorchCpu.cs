using System.Runtime.InteropServices;
using TorchSharp;

namespace ContinualMoE;

/// <summary>The exports of the libtorch_cpu that TorchSharp loaded (MKL's service functions among them): the one place
/// that finds them.</summary>
internal static class LibTorchCpu
{
    private static readonly Lazy<nint> Library = new(Load);

    /// <summary>The address of <paramref name="name"/> in libtorch_cpu, or 0 where it has no such export (or none is loaded,
    /// as on macOS arm64 builds without MKL).</summary>
    public static nint Export(string name) =>
        Library.Value != 0 && NativeLibrary.TryGetExport(Library.Value, name, out var address) ? address : 0;

    private static nint Load()
    {
        torch.get_num_threads();   // loads libtorch, so that its soname resolves to the loaded library
        return NativeLibrary.TryLoad("libtorch_cpu.so", out var library) ? library : 0;
    }
}
