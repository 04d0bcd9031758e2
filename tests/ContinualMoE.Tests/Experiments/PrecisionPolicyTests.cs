using ContinualMoE.Backbones;
using ContinualMoE.Cli.Commands;
using ContinualMoE.Experiments;
using ContinualMoE.Methods;
using ContinualMoE.Tests.Cli;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Experiments;

/// <summary><c>precision: auto</c> (issue 16 §1): per method, bf16 only where declared bf16-safe and the CPU has native
/// bf16; runs record the resolved value; paper presets pin fp32.</summary>
public class PrecisionPolicyTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "cmoe-precision-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }

    [Fact]
    public void AutoIsBf16OnlyForBf16SafeMethodsOnACpuWithNativeBf16()
    {
        Assert.Equal(ComputePrecision.Bf16, PrecisionPolicy.Resolve(methodIsBf16Safe: true, CPU, cpuHasNativeBf16: true));
        Assert.Equal(ComputePrecision.Fp32, PrecisionPolicy.Resolve(methodIsBf16Safe: true, CPU, cpuHasNativeBf16: false));
        Assert.Equal(ComputePrecision.Fp32, PrecisionPolicy.Resolve(methodIsBf16Safe: false, CPU, cpuHasNativeBf16: true));
        foreach (var method in MethodRegistry.Names)
            Assert.Equal(MethodRegistry.IsBf16Safe(method) ? ComputePrecision.Bf16 : ComputePrecision.Fp32,
                PrecisionPolicy.Resolve(method, CPU, cpuHasNativeBf16: true));
    }

    /// <summary>The methods measured outside the 0.3-point bound in bf16 on the embedded default or on split Fashion-MNIST
    /// (docs/methods/precision.md) must never be declared bf16-safe.</summary>
    [Theory]
    [InlineData("ewc-lora")]
    [InlineData("joint-lora")]
    [InlineData("o-lora")]
    [InlineData("seq-lora")]
    [InlineData("seta")]
    [InlineData("smope")]
    [InlineData("norga")]
    [InlineData("shared-prompt")]
    [InlineData("deep-l2p")]       // Fashion-MNIST +0.6
    [InlineData("inflora")]        // Fashion-MNIST +2.0
    [InlineData("mocl")]           // Fashion-MNIST -1.35
    [InlineData("coda-prompt")]    // Fashion-MNIST +0.4
    [InlineData("samoe")]          // embedded default -0.5 (session 14, bf16 attention written out in float32)
    public void MethodsMeasuredOutsideTheBoundKeepFp32UnderAuto(string method)
    {
        Assert.False(MethodRegistry.IsBf16Safe(method));
        Assert.Equal(ComputePrecision.Fp32, PrecisionPolicy.Resolve(new RunConfig { Method = method, Precision = ComputePrecision.Auto }).Precision);
    }

    [Fact]
    public void ExplicitPrecisionsAreLeftAlone()
    {
        var method = MethodRegistry.Names.First(n => !MethodRegistry.IsBf16Safe(n));
        Assert.Equal(ComputePrecision.Bf16, PrecisionPolicy.Resolve(new RunConfig { Method = method, Precision = ComputePrecision.Bf16 }).Precision);
        Assert.Equal(ComputePrecision.Fp32, PrecisionPolicy.Resolve(new RunConfig { Method = method, Precision = ComputePrecision.Fp32 }).Precision);
        Assert.Equal(ComputePrecision.Fp32, new RunConfig().Precision);   // fp32 stays the default
    }

    [Fact]
    public void AutoCannotReachTheBackboneUnresolved()
    {
        var error = Assert.Throws<ContinualMoEException>(() => ComputePrecision.Parse(ComputePrecision.Auto, CPU));
        Assert.Contains("resolved per method", error.Message);
    }

    [Fact]
    public void ARunWithAutoRecordsWhatItResolvedToAndResumesFromThatRecord()
    {
        // A bf16-safe method where one is declared (then the record says bf16 on this machine), else any method.
        var method = MethodRegistry.Names.FirstOrDefault(MethodRegistry.IsBf16Safe) ?? "ncm";
        var expected = PrecisionPolicy.Resolve(method, CPU, CpuFeatures.HasNativeBf16);
        var config = EveryMethodCheckpointTests.TinyRun(method) with { Tasks = 2, Precision = ComputePrecision.Auto };

        var folder = Path.Combine(root, "auto");
        using var stop = new CancellationTokenSource();
        Assert.Equal(130, RunSession.Start(config, folder, force: false, stop.Token, taskFinished: _ => stop.Cancel()));
        var written = RunConfig.FromJson(File.ReadAllText(Path.Combine(folder, "config.json")), "config.json");
        Assert.Equal(expected, written.Precision);
        // The same auto config on resume is the recorded run (auto resolves the same way on this machine).
        Assert.Equal(0, RunSession.Resume(folder, null, ["precision=auto"], CancellationToken.None));
    }

    [Fact]
    public void ExperimentConfigHoldsTheResolvedPrecisionOfItsBackbone()
    {
        var method = MethodRegistry.Names.First(n => !MethodRegistry.IsBf16Safe(n));
        using var experiment = Experiment.Build(EveryMethodCheckpointTests.TinyRun(method) with { Precision = ComputePrecision.Auto }, null);
        Assert.Equal(ComputePrecision.Fp32, experiment.Config.Precision);
        Assert.Equal(ScalarType.Float32, experiment.Backbone.ComputeType);
    }

    public static TheoryData<string> PaperPresets()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(RepositoryPaths.Configs, "*.json")
                     .Where(f => f.EndsWith("-paper.json", StringComparison.Ordinal) || f.EndsWith("-sup21k.json", StringComparison.Ordinal)).Order())
            data.Add(Path.GetFileName(file));
        return data;
    }

    /// <summary>Paper presets reproduce the papers' fp32 numbers whatever the default becomes.</summary>
    [Theory]
    [MemberData(nameof(PaperPresets))]
    public void PaperPresetsPinFp32(string file)
    {
        var path = Path.Combine(RepositoryPaths.Configs, file);
        Assert.Contains("\"precision\": \"fp32\"", File.ReadAllText(path));
        Assert.Equal(ComputePrecision.Fp32, RunConfig.FromJson(File.ReadAllText(path), path).Precision);
    }
}
