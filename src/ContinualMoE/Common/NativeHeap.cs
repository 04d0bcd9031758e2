using System.Runtime.InteropServices;

namespace ContinualMoE;

/// <summary>
/// How glibc's malloc, which libtorch's CPU allocator uses, returns freed memory to the system. By default it maps
/// blocks above 128 KB separately (unmapped again on free) and trims the heap once its free top exceeds twice the
/// largest freed block; its dynamic threshold would stop the first, but a training step frees all its tensors at once at
/// the end of its dispose scope, so the heap is trimmed every step and the next step takes a page fault for every 4 KB
/// it touches. Measured on the default language model (bf16, LoRA q,v, batch 8 x 64 tokens, one thread): 1,300 page
/// faults and a median step of 55-58 ms with the defaults, against 180 faults and 19.7 ms with the settings below
/// (the fastest steps, 17-18 ms, equal in both). PyTorch users get the same effect from jemalloc or tcmalloc.
/// </summary>
public static class NativeHeap
{
    private const int TrimThresholdOption = -1;   // M_TRIM_THRESHOLD
    private const int MapThresholdOption = -3;    // M_MMAP_THRESHOLD
    /// <summary>Blocks up to 32 MB (glibc's largest mmap threshold) come from the heap and are reused.</summary>
    public const int MapThresholdBytes = 32 << 20;
    /// <summary>Up to 512 MB of free memory at the top of a heap stays with the process between steps.</summary>
    public const int TrimThresholdBytes = 512 << 20;

    /// <summary>The same two settings for a child process, as glibc's GLIBC_TUNABLES environment variable: what
    /// <c>bench lm</c> gives the PyTorch process it compares with, so that both sides keep their freed memory and the
    /// comparison is of compute (PyTorch 1.13 alone faulted its memory back in every step: bf16 full training of the
    /// default GPT-2 at 12-14K tokens/s, 20-22K with these settings; docs/benchmarks.md, session 10). An existing value
    /// is kept, with these appended.</summary>
    public static string GlibcTunables(string? existing = null) =>
        (string.IsNullOrEmpty(existing) ? "" : existing + ":") +
        $"glibc.malloc.mmap_threshold={MapThresholdBytes}:glibc.malloc.trim_threshold={TrimThresholdBytes}";

    private static readonly Lazy<bool> Configured = new(Configure);

    /// <summary>Sets the two thresholds once per process (Linux with glibc; elsewhere nothing). Returns whether glibc took both.</summary>
    public static bool KeepFreedMemory() => Configured.Value;

    private static bool Configure()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            return mallopt(MapThresholdOption, MapThresholdBytes) == 1 & mallopt(TrimThresholdOption, TrimThresholdBytes) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;   // not glibc (musl has no such tuning)
        }
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int option, int value);
}
