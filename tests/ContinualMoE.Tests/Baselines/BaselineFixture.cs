using TorchSharp;
using ContinualMoE.Backbones;
using ContinualMoE.Data.Generated;
using ContinualMoE.Data.Transforms;
using ContinualMoE.Methods;
using ContinualMoE.Scenarios;
using ContinualMoE.Tests.Backbones;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Baselines;

/// <summary>Tiny backbone, method contexts and a 2-task generated scenario for the baseline tests.</summary>
public static class BaselineFixture
{
    public static MethodContext Context(int taskCount = 2, int classCount = 4, Dictionary<string, object>? settings = null, int epochs = 1, double rate = 0.01) =>
        new(Backbone(), classCount, taskCount, CPU, 3,
            new TrainingSettings(Epochs: epochs, LearningRate: rate, BatchSize: 16), Settings(settings));

    /// <summary>The tiny test ViT with weights drawn at unit gain (1/sqrt(fan-in)) instead of timm's 0.02, so that a
    /// random backbone passes enough of the image (and of the prompts) to its class token to learn from.</summary>
    public static VisionTransformer Backbone()
    {
        var vit = new VisionTransformer(VitTestModels.Tiny, seed: 1);
        using var noGrad = no_grad();
        foreach (var (name, p) in vit.named_parameters())
        {
            if (p.dim() >= 2 && !name.Contains("pos_embed") && !name.Contains("cls_token"))
                p.normal_(0, 1.0 / Math.Sqrt(p.shape.Skip(1).Aggregate(1L, (a, b) => a * b)));
        }
        return vit;
    }

    public static MethodSettings Settings(Dictionary<string, object>? values) => values is null
        ? MethodSettings.Empty
        : new MethodSettings(values.ToDictionary(kv => kv.Key, kv => System.Text.Json.JsonSerializer.SerializeToElement(kv.Value)));

    public static T Create<T>(string name, MethodContext context) where T : IContinualLearner => (T)MethodRegistry.Create(name, context);

    /// <summary>Two tasks of two generated classes each, 16x16 images.</summary>
    public static (ClassIncrementalScenario Scenario, DataSource Data) Scenario(int trainPerClass = 24, int testPerClass = 12)
    {
        var data = GeneratedBenchmark.Create(seed: 5, upstreamClasses: 1, continualClasses: 4, trainPerClass, testPerClass, size: 16).Continual;
        var scenario = ClassIncrementalScenario.Create(data, taskCount: 2, seed: 1);
        var source = new DataSource(16, [.. ImagePipeline.VitMean], [.. ImagePipeline.VitStd], batchSize: 16, seed: 2, CPU, workers: 1);
        return (scenario, source);
    }

    /// <summary>Runs the learner through the 2-task scenario; returns the final average accuracy over all seen classes' tasks.</summary>
    public static double RunTwoTasks(IContinualLearner learner, Action<int>? afterTask = null)
    {
        var (scenario, data) = Scenario();
        var results = new ContinualTrainer(scenario, data, seed: 4).Run(learner, afterTask: (t, _) => afterTask?.Invoke(t));
        return (results.Accuracy[0, 1] + results.Accuracy[1, 1]) / 2;
    }

    public static Tensor Images(int count, int seed = 0)
    {
        torch.random.manual_seed(seed);
        return randn(count, 3, 16, 16);
    }

    public static EvaluationContext Evaluation(int tasksTrained, int classCount = 4) =>
        new(tasksTrained, Enumerable.Repeat(true, classCount).ToArray(), null, null);

    public static bool Close(Tensor a, Tensor b, double tolerance = 1e-5) => a.allclose(b, rtol: tolerance, atol: tolerance);
}
