using System.Runtime.InteropServices;
using ContinualMoE.Tests.Cli;
using static TorchSharp.torch;

namespace ContinualMoE.Tests;

/// <summary>Issue 16: on an AMD CPU with AVX-512, MKL runs its AVX-512 kernels in every process that computes (its generic
/// AVX2 path otherwise), the products stay right, and CMOE_MKL_AMD_AVX512=0 keeps MKL's own choice.</summary>
public class MklCpuDispatchTests
{
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate int MklQuery();

    /// <summary>Read from /proc/cpuinfo, not from the code under test.</summary>
    private static bool CpuIsAmdWithAvx512()
    {
        if (!File.Exists("/proc/cpuinfo")) return false;
        var lines = File.ReadLines("/proc/cpuinfo").Take(40).ToList();
        var flags = lines.FirstOrDefault(l => l.StartsWith("flags"))?.Split(' ') ?? [];
        return lines.Any(l => l.StartsWith("vendor_id") && l.EndsWith("AuthenticAMD"))
            && new[] { "avx512f", "avx512bw", "avx512dq", "avx512vl" }.All(flags.Contains);
    }

    private static bool OptedOut => Environment.GetEnvironmentVariable(MklCpuDispatch.OptOutVariable) == "0";

    [Fact]
    public void OnAnAmdCpuWithAvx512MklRunsItsAvx512KernelsAndTheProductsStayRight()
    {
        var state = MklCpuDispatch.Configure();
        Assert.Equal(CpuIsAmdWithAvx512() && !OptedOut, state.Avx512OnAmd);
        if (state.Avx512OnAmd)
        {
            // MKL's own report of the path it chose: 0 is its generic one, which it takes on AMD CPUs by itself.
            var detect = Marshal.GetDelegateForFunctionPointer<MklQuery>(LibTorchCpu.Export("mkl_serv_cpu_detect"));
            Assert.NotEqual(0, detect());
        }
        var generator = new Generator(11);
        foreach (var (rows, inner, columns) in new[] { (300L, 200L, 100L), (2080L, 128L, 384L), (7L, 5L, 3L) })
        {
            var a = randn([rows, inner], generator: generator);
            var b = randn([inner, columns], generator: generator);
            var exact = a.to(ScalarType.Float64).matmul(b.to(ScalarType.Float64));
            var error = (a.matmul(b).to(ScalarType.Float64) - exact).abs().max().item<double>();
            Assert.True(error < 1e-4 * Math.Sqrt(inner), $"{rows}x{inner}x{columns}: largest error {error}");
        }
    }

    [Fact]
    public void BenchSaysWhichKernelsMklRunsAndTheVariableKeepsMklsOwnChoice()
    {
        static string MklLine(Dictionary<string, string>? environment)
        {
            var lines = new List<string>();
            using var process = CliProcess.Start(["bench", "backbone", "--config", "vit_nano_patch4_32", "--batch-size", "2",
                "--precision", "fp32", "--seconds", "0.05"], environment, line => { lock (lines) lines.Add(line); });
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, string.Join("\n", lines));
            lock (lines) return Assert.Single(lines, l => l.StartsWith("MKL (fp32 matrix products): "));
        }
        var chosen = MklLine(null);
        if (CpuIsAmdWithAvx512() && !OptedOut) Assert.EndsWith("AVX-512 kernels on this AMD CPU", chosen);
        else Assert.Contains("MKL's own choice", chosen);
        var kept = MklLine(new() { [MklCpuDispatch.OptOutVariable] = "0" });
        Assert.EndsWith(CpuIsAmdWithAvx512() ? $"MKL's own choice ({MklCpuDispatch.OptOutVariable}=0)" : "CPU)", kept);
    }

    [Fact]
    public void TheDefaultBackbonesV3RecipeRefusesToPretrainOnTheSwitchedKernels()
    {
        if (!MklCpuDispatch.Configure().Avx512OnAmd) return;   // MKL's own kernels here: the recipe runs as it always did
        var data = ContinualMoE.Experiments.DefaultBackbone.UpstreamData(32).Upstream;
        var error = Assert.Throws<ContinualMoEException>(() => ContinualMoE.Experiments.BackbonePretraining.Train(
            ContinualMoE.Backbones.VitRegistry.Get("vit_nano_patch4_32"), data, ContinualMoE.Experiments.DefaultBackbone.Settings, CPU));
        Assert.Contains("continual-moe pretrain", error.Message);
    }

    [Fact]
    public void AMissingDefaultBackboneIsPretrainedInAProcessOnMklsOwnKernels()
    {
        var cache = Directory.CreateTempSubdirectory("cmoe-mkl-cache-");
        var runs = Directory.CreateTempSubdirectory("cmoe-mkl-runs-");
        try
        {
            var lines = new List<string>();
            using var process = CliProcess.Start(["run", "--backbone", "vit_nano_patch4_32", "--tasks", "2", "--epochs", "1",
                    "--output", Path.Combine(runs.FullName, "run")],
                new Dictionary<string, string> { ["CONTINUAL_MOE_CACHE"] = cache.FullName }, line => { lock (lines) lines.Add(line); });
            process.WaitForExit();
            lock (lines)
            {
                Assert.True(process.ExitCode == 0, string.Join("\n", lines));
                Assert.Contains($"MKL (fp32 matrix products): MKL's own choice ({ContinualMoE.Experiments.DefaultBackbone.RecipeNeedsMklsOwnKernels})", lines);
            }
            Assert.True(File.Exists(Path.Combine(cache.FullName, "backbones", "vit_nano_patch4_32-generated-upstream-v3.safetensors")));
        }
        finally
        {
            cache.Delete(recursive: true);
            runs.Delete(recursive: true);
        }
    }
}
