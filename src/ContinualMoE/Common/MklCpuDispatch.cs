using System.Buffers.Binary;
using System.Runtime.Intrinsics.X86;

namespace ContinualMoE;

/// <summary>What <see cref="MklCpuDispatch.Configure"/> found: whether MKL runs its AVX-512 kernels on this AMD CPU, and
/// why (or why not) in words for reports.</summary>
public sealed record MklDispatchState(bool Avx512OnAmd, string Description);

/// <summary>
/// MKL, which libtorch hands every float32 matrix product on the CPU, chooses its kernels by CPU vendor before features:
/// on an AMD CPU it runs a generic AVX2 path (<c>mkl_blas_def_sgemm_kernel_0_zen</c>) even where the CPU has AVX-512,
/// as the project's AMD EPYC (Zen 4) machines do. It asks one function, <c>mkl_serv_intel_cpu_true</c>, which caches its
/// answer in a variable of libtorch_cpu's data. Setting that answer to "Intel" before MKL first asks makes MKL choose by
/// features (<c>mkl_serv_cpu_detect</c> then reports its AVX-512 path, code 7 instead of 0): the widely used remedy for MKL
/// on AMD, done here on the loaded library's data, with no library or environment variable to install.
///
/// Measured on the project's machine (2 threads, alternated): `bench backbone` fp32 matrix products 120 → 160-165 GFLOP/s
/// and the micro ViT's forward 430 → 500-545 images/s; `continual-moe run` (the embedded default) 37.2-38.6 s against
/// 44.5-51.3 s with <see cref="OptOutVariable"/>=0, the same final accuracy. float32 results change in their last bits
/// (another summation order), as they do between CPUs.
///
/// Only on AMD CPUs with AVX-512 (F, BW, DQ, VL): Intel CPUs get MKL's AVX-512 path anyway, and AMD CPUs without it were
/// not measured. <see cref="OptOutVariable"/>=0 keeps MKL's own choice. The answer can only be given before MKL's first
/// product; every command that computes calls this first (<see cref="ComputeDevice.ConfigureThreads"/>).
/// </summary>
public static unsafe class MklCpuDispatch
{
    /// <summary>Set to 0 to keep MKL's own kernel choice on AMD CPUs.</summary>
    public const string OptOutVariable = "CMOE_MKL_AMD_AVX512";

    private static readonly object Gate = new();
    private static MklDispatchState? state;

    /// <summary>Once per process: on an AMD CPU with AVX-512, lets MKL choose its kernels by the CPU's features. Later
    /// calls return what the first one did.</summary>
    public static MklDispatchState Configure()
    {
        lock (Gate) return state ??= Apply();
    }

    /// <summary>For a process whose results must be MKL's own bits (the default backbone's v3 pretraining, see
    /// <see cref="Experiments.DefaultBackbone"/>): MKL keeps its own choice for the rest of the process. Fails if the
    /// process has already switched.</summary>
    public static MklDispatchState KeepOwnChoice(string why)
    {
        lock (Gate)
        {
            state ??= Unchanged(why);
            if (state.Avx512OnAmd)
                throw new ContinualMoEException($"{why} needs MKL's own kernels, and this process already runs its AVX-512 ones: run it in a process of its own (continual-moe pretrain)");
            return state;
        }
    }

    private static MklDispatchState Unchanged(string why) => new(false, $"MKL's own choice ({why})");

    private static MklDispatchState Apply()
    {
        if (!OperatingSystem.IsLinux() || !X86Base.X64.IsSupported) return Unchanged("not x86-64 Linux");
        if (!IsAmd()) return Unchanged("not an AMD CPU");
        if (!(Avx512F.IsSupported && Avx512BW.IsSupported && Avx512DQ.IsSupported && Avx512F.VL.IsSupported))
            return Unchanged("AMD CPU without AVX-512");
        if (Environment.GetEnvironmentVariable(OptOutVariable) == "0") return Unchanged($"{OptOutVariable}=0");
        var vendorCheck = LibTorchCpu.Export("mkl_serv_intel_cpu_true");
        if (vendorCheck == 0) return Unchanged("this libtorch has no MKL");
        var answer = CachedAnswer(vendorCheck);
        if (answer is null) return Unchanged("its vendor check is not the code this was written for");
        if (*answer >= 0) return Unchanged("it had already chosen: configure before the first matrix product");
        *answer = 1;
        return new(true, "AVX-512 kernels on this AMD CPU");
    }

    private static bool IsAmd()
    {
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        Span<byte> vendor = stackalloc byte[12];
        BinaryPrimitives.WriteInt32LittleEndian(vendor, ebx);
        BinaryPrimitives.WriteInt32LittleEndian(vendor[4..], edx);
        BinaryPrimitives.WriteInt32LittleEndian(vendor[8..], ecx);
        return vendor.SequenceEqual("AuthenticAMD"u8);
    }

    /// <summary>The variable MKL's vendor check caches its answer in (negative: not asked yet), found from the check's
    /// code, which in libtorch 2.10's MKL is <c>mov eax, [rip + disp32]; test eax, eax; js compute; ret</c>. Null for any
    /// other code: then nothing is touched.</summary>
    private static int* CachedAnswer(nint vendorCheck)
    {
        var code = new ReadOnlySpan<byte>((void*)vendorCheck, 11);
        var expected = code[0] == 0x8B && code[1] == 0x05          // mov eax, [rip + disp32]
            && code[6] == 0x85 && code[7] == 0xC0                     // test eax, eax
            && code[8] == 0x78 && code[10] == 0xC3;                   // js compute; ret
        if (!expected) return null;
        var displacement = BinaryPrimitives.ReadInt32LittleEndian(code[2..6]);
        return (int*)(vendorCheck + 6 + displacement);                // rip-relative: from the next instruction
    }
}
