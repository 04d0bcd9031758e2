using TorchSharp;

namespace ContinualMoE;

/// <summary>
/// Where tensors live. A setting, never hard-coded: "cpu" here; "cuda" or "cuda:N" works only in a build that
/// references TorchSharp's CUDA package instead of TorchSharp-cpu (not available on the project's machines, so
/// that path is untested here).
/// </summary>
public static class ComputeDevice
{
    public static torch.Device Parse(string name)
    {
        var normalized = name.Trim().ToLowerInvariant();
        if (normalized == "cpu") return torch.CPU;
        if (normalized.StartsWith("cuda"))
        {
            if (!torch.cuda.is_available())
                throw new ContinualMoEException(
                    $"device '{name}' requested but CUDA is not available: this build references TorchSharp-cpu; " +
                    "reference TorchSharp-cuda-linux (or -windows) instead of TorchSharp-cpu to train on a GPU");
            return torch.device(normalized);
        }
        throw new ContinualMoEException($"unknown device '{name}': use cpu, cuda or cuda:N");
    }

    /// <summary>Uses every core for intra-op parallelism (libtorch defaults to the physical core count, which is right here),
    /// unless OMP_NUM_THREADS says otherwise (as PyTorch honours it): a sweep running several runs at once, or a Slurm
    /// task given some of a node's cores, sets it so that the runs do not oversubscribe the cores. Also keeps freed native
    /// memory for reuse (<see cref="NativeHeap"/>) and lets MKL use AVX-512 on AMD CPUs (<see cref="MklCpuDispatch"/>):
    /// every command that computes calls this first.</summary>
    public static void ConfigureThreads(int? threads = null)
    {
        NativeHeap.KeepFreedMemory();
        MklCpuDispatch.Configure();
        var count = threads ?? ConfiguredThreads();
        if (count > 0)
        {
            torch.set_num_threads(count);
            threadsConfigured = true;
        }
    }

    // libtorch's set_num_threads also turns off MKL's dynamic thread choice, which changes the summation of small
    // matrix products; so the thread count is only switched in processes that have already set it.
    private static bool threadsConfigured;

    /// <summary>Runs <paramref name="action"/> with libtorch on one intra-op thread, then restores the thread count, in a
    /// process that set its threads (<see cref="ConfigureThreads"/>: every CLI command that computes); elsewhere it just
    /// runs <paramref name="action"/>. For loops of tiny ops only: each op on two threads pays an OpenMP fork and join that
    /// costs more than the op (classifier alignment on the embedded default: 0.21 ms per step on two threads, 0.12 ms on
    /// one). Whether results stay bit for bit is up to the caller to check (ClassifierAlignmentThreadTests). For single small
    /// matrix products inside multi-threaded work, <see cref="MklThreads.OnCallingThread"/> keeps libtorch's count and
    /// MKL's dynamic choice as they are.</summary>
    public static void OnOneThread(Action action) => OnOneThread(() => { action(); return 0; });

    /// <summary><see cref="OnOneThread(Action)"/> for work that returns a value.</summary>
    public static T OnOneThread<T>(Func<T> function)
    {
        var threads = torch.get_num_threads();
        if (threads <= 1 || !threadsConfigured) return function();
        torch.set_num_threads(1);
        try { return function(); }
        finally { torch.set_num_threads(threads); }
    }

    /// <summary>The threads <see cref="ConfigureThreads"/> uses without an explicit count: OMP_NUM_THREADS, else every core.</summary>
    public static int ConfiguredThreads() => ThreadsFromEnvironment() ?? Environment.ProcessorCount;

    private static int? ThreadsFromEnvironment() =>
        int.TryParse(Environment.GetEnvironmentVariable("OMP_NUM_THREADS"), out var n) && n > 0 ? n : null;
}
