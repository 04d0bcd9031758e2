using System.Security.Cryptography;
using System.Text.Json;
using ContinualMoE.Data.Transforms;
using ContinualMoE.Experiments;
using ContinualMoE.Methods;
using ContinualMoE.Training;
using ContinualMoE.Tests.Cli;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Training;

/// <summary>
/// Issue 16 §1, for every registered method: the fp32 default computes exactly what it did before the precision
/// setting existed (SHA-256 of its accuracy matrix and of its logits on six test images after a tiny 3-task run, against
/// Fixtures/precision_fp32_golden.json, written at the commit before the setting by setting CMOE_WRITE_PRECISION_GOLDEN=1).
/// A change that moves fp32 numerics on purpose regenerates the file the same way and says so: regenerated once since, when
/// MKL's AVX-512 kernels on AMD CPUs (<see cref="MklCpuDispatch"/>, which the test host applies as every command does)
/// changed float32 products in their last bits.
/// </summary>
public class PrecisionTests
{
    public static TheoryData<string> Methods() => [.. MethodRegistry.Names];

    private static string GoldenPath => Path.Combine(AppContext.BaseDirectory, "Fixtures", "precision_fp32_golden.json");

    /// <summary>The tiny run of <see cref="EveryMethodCheckpointTests"/>; returns the accuracy matrix and the logits'
    /// fingerprint, and the logits themselves.</summary>
    internal static (string Matrix, string LogitsSha, float[] Logits) TinyRunFingerprint(RunConfig config)
    {
        using var experiment = Experiment.Build(config, null);
        var results = experiment.Trainer().Run(experiment.Learner);
        var test = (ContinualMoE.Data.IImageDataset)experiment.Scenario.Tasks[0].Test;
        var pipeline = ImagePipeline.ForEvaluation(experiment.Backbone.Config.ImageSize);
        using var images = stack(Enumerable.Range(0, Math.Min(6, test.Count)).Select(i => pipeline.ProcessToTensor(test.GetImage(i), 0, i)).ToArray());
        var context = new EvaluationContext(experiment.Scenario.TaskCount, experiment.Scenario.SeenClassMask(experiment.Scenario.TaskCount - 1), null, null);
        using var noGrad = no_grad();
        using var prediction = experiment.Learner.Predict(images, context);
        using var logits = prediction.Logits.to(ScalarType.Float32).contiguous();
        var sha = Convert.ToHexString(SHA256.HashData(logits.bytes)).ToLowerInvariant();
        return (results.Accuracy.ToCsv(), sha, logits.data<float>().ToArray());
    }

    [Theory]
    [MemberData(nameof(Methods))]
    public void Fp32RunIsBitForBitWhatItWasBeforeThePrecisionSetting(string method)
    {
        var (matrix, sha, _) = TinyRunFingerprint(EveryMethodCheckpointTests.TinyRun(method));
        var current = new Dictionary<string, string> { ["matrix"] = matrix, ["logits_sha256"] = sha };
        if (Environment.GetEnvironmentVariable("CMOE_WRITE_PRECISION_GOLDEN") == "1")
        {
            lock (GoldenLock)
            {
                var source = Path.Combine(RepositoryPaths.Fixtures, "precision_fp32_golden.json");
                var all = File.Exists(source)
                    ? JsonSerializer.Deserialize<SortedDictionary<string, Dictionary<string, string>>>(File.ReadAllText(source))!
                    : new SortedDictionary<string, Dictionary<string, string>>();
                all[method] = current;
                File.WriteAllText(source, JsonSerializer.Serialize(all, new JsonSerializerOptions { WriteIndented = true }) + "\n");
            }
            return;
        }
        var golden = JsonSerializer.Deserialize<Dictionary<string, Dictionary<string, string>>>(File.ReadAllText(GoldenPath))!;
        Assert.True(golden.ContainsKey(method), $"{method}: no golden fp32 fingerprint; write it with CMOE_WRITE_PRECISION_GOLDEN=1 (see the class comment)");
        Assert.Equal(golden[method]["matrix"], matrix);
        Assert.Equal(golden[method]["logits_sha256"], sha);
    }

    private static readonly object GoldenLock = new();

    [Theory]
    [MemberData(nameof(Methods))]
    public void Bf16RunTrainsWithFiniteResultsAndKeepsTheMethodsStateInFp32(string method)
    {
        var config = EveryMethodCheckpointTests.TinyRun(method) with { Tasks = 2, Precision = "bf16" };
        using var experiment = Experiment.Build(config, null);
        Assert.Equal(ScalarType.BFloat16, experiment.Backbone.ComputeType);
        var results = experiment.Trainer().Run(experiment.Learner);
        Assert.Equal(2, results.Accuracy.TasksTrained);
        for (var t = 0; t < 2; t++)
            for (var i = 0; i <= t; i++)
                Assert.InRange(results.Accuracy[i, t], 0, 100);
        // Everything the method learned or keeps is fp32 (or fp64 statistics); only the frozen backbone is bf16 (its head,
        // unused by methods, stays fp32).
        foreach (var (name, tensor) in experiment.Learner.State())
            if (tensor.is_floating_point())
                Assert.True(tensor.dtype is ScalarType.Float32 or ScalarType.Float64, $"{method}: state {name} is {tensor.dtype}");
        foreach (var (name, p) in experiment.Backbone.named_parameters())
        {
            Assert.Equal(name.StartsWith("head.") ? ScalarType.Float32 : ScalarType.BFloat16, p.dtype);
            Assert.True(p.grad is null, $"{method}: backbone parameter {name} has a gradient");
        }

        var test = (ContinualMoE.Data.IImageDataset)experiment.Scenario.Tasks[0].Test;
        var pipeline = ImagePipeline.ForEvaluation(experiment.Backbone.Config.ImageSize);
        using var images = stack(Enumerable.Range(0, Math.Min(6, test.Count)).Select(i => pipeline.ProcessToTensor(test.GetImage(i), 0, i)).ToArray());
        using var noGrad = no_grad();
        using var prediction = experiment.Learner.Predict(images, new EvaluationContext(2, experiment.Scenario.SeenClassMask(1), null, null));
        Assert.Equal(ScalarType.Float32, prediction.Logits.dtype);
        using var seen = prediction.Logits.index_select(1, tensor(Enumerable.Range(0, experiment.Scenario.ClassCount).Where(c => experiment.Scenario.SeenClassMask(1)[c]).Select(c => (long)c).ToArray()));
        Assert.True(seen.isfinite().all().item<bool>(), $"{method}: bf16 logits of seen classes are not finite");
    }

    [Fact]
    public void Fp16IsRefusedOnACpuAndUnknownPrecisionsAreOneLineErrors()
    {
        var fp16 = Assert.Throws<ContinualMoEException>(() => ContinualMoE.Backbones.ComputePrecision.Parse("fp16", CPU));
        Assert.Contains("CUDA", fp16.Message);
        Assert.DoesNotContain('\n', fp16.Message);
        Assert.Contains("fp32, bf16", Assert.Throws<ContinualMoEException>(() => ContinualMoE.Backbones.ComputePrecision.Parse("fp8", CPU)).Message);
        Assert.Equal(ScalarType.BFloat16, ContinualMoE.Backbones.ComputePrecision.Parse("BF16", CPU));
        var config = EveryMethodCheckpointTests.TinyRun("ncm") with { Precision = "fp16" };
        Assert.Contains("fp16", Assert.Throws<ContinualMoEException>(() => Experiment.Build(config, null)).Message);
    }
}
