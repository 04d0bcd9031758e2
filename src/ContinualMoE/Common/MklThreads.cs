namespace ContinualMoE;

/// <summary>
/// libtorch hands every float32 matrix product on the CPU to MKL, which splits it over all intra-op threads however
/// small it is. For the products of a low-rank expert in a generation step that costs more than the product: 8 x 768 by
/// 768 x 8, then 8 x 8 by 8 x 768, took 4.4 + 3.5 us on one thread and 13.6 + 15.6 us on two (PyTorch with OpenBLAS keeps
/// such products on one thread). MKL's thread-local setting (<c>MKL_Set_Num_Threads_Local</c>, exported by
/// libtorch_cpu) keeps them on the calling thread without touching libtorch's thread count. MKL splits these products by
/// rows and columns, never along the inner dimension, so the results are the same bits (tests/.../MklThreadsTests).
/// Where libtorch has no MKL (macOS arm64), nothing changes.
/// </summary>
public static unsafe class MklThreads
{
    private static readonly Lazy<(nint Set, nint GetMax)> Entries = new(Find);

    /// <summary>Whether this libtorch exports MKL's thread-local setting (false: <see cref="OnCallingThread"/> does nothing).</summary>
    public static bool Available => Entries.Value.Set != 0;

    /// <summary>Until disposed, MKL products issued by this thread run on it alone; then the thread's previous setting returns.</summary>
    public static Scope OnCallingThread()
    {
        var set = Entries.Value.Set;
        return set == 0 ? default : new Scope(((delegate* unmanaged<int, int>)set)(1), true);
    }

    /// <summary>The threads MKL would use for a product issued from this thread now (0 when unavailable).</summary>
    public static int MaxThreads() => Entries.Value.GetMax is var get and not 0 ? ((delegate* unmanaged<int>)get)() : 0;

    public readonly struct Scope(int previous, bool active) : IDisposable
    {
        public void Dispose()
        {
            if (active) ((delegate* unmanaged<int, int>)Entries.Value.Set)(previous);
        }
    }

    private static (nint, nint) Find()
    {
        var set = LibTorchCpu.Export("MKL_Set_Num_Threads_Local");
        var getMax = LibTorchCpu.Export("MKL_Get_Max_Threads");
        return set == 0 || getMax == 0 ? (0, 0) : (set, getMax);
    }
}
