using ContinualMoE.Backbones;
using ContinualMoE.Prompts;
using ContinualMoE.Methods;
using ContinualMoE.Tests.Backbones;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Methods;

public class SmopeTests
{
    private static MethodContext Context(int taskCount, int classCount = 10, MethodSettings? settings = null) =>
        new(new VisionTransformer(VitTestModels.Tiny, seed: 1), classCount, taskCount, CPU, 3,
            new TrainingSettings(Epochs: 1, LearningRate: 0.01, BatchSize: 8), settings ?? MethodSettings.Empty);

    [Fact]
    public void ParameterCountDoesNotDependOnTheNumberOfTasks()
    {
        using var five = (Smope)MethodRegistry.Create("smope", Context(5));
        using var twenty = (Smope)MethodRegistry.Create("smope", Context(20));
        Assert.Equal(five.Cost(5).TrainableParameters, twenty.Cost(20).TrainableParameters);
        Assert.Equal(0, five.Cost(5).ParametersAddedPerTask);
        Assert.Equal(1, five.Cost(5).BackbonePassesPerTestImage);
        // 3 blocks of the tiny backbone x 3 heads x 25 experts x (key + value) x head width 8, plus a 24x10 head.
        Assert.Equal(3 * 3 * 25 * 2 * 8 + 24 * 10 + 10, five.Cost(5).TrainableParameters);
    }

    [Fact]
    public void FrequenciesAndPreviousKeysSurviveStateRoundTrip()
    {
        using var original = (Smope)MethodRegistry.Create("smope", Context(3));
        using (no_grad())
        {
            original.Experts.Frequencies.copy_(rand_like(original.Experts.Frequencies) * 100);
            // Keys moved by training, snapshotted, then moved again: every tensor differs from a fresh learner's.
            original.Experts.Keys.add_(randn_like(original.Experts.Keys), Scalars.One);
            original.Experts.SnapshotKeys();
            original.Experts.Keys.add_(randn_like(original.Experts.Keys), Scalars.One);
        }
        var state = original.State().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        using var restored = (Smope)MethodRegistry.Create("smope", Context(3));
        Assert.False(restored.Experts.Keys.equal(original.Experts.Keys).all().item<bool>());
        Assert.False(restored.Experts.PreviousKeys.equal(original.Experts.PreviousKeys).all().item<bool>());
        restored.LoadState(state);
        Assert.True(restored.Experts.Frequencies.equal(original.Experts.Frequencies).all().item<bool>());
        Assert.True(restored.Experts.PreviousKeys.equal(original.Experts.PreviousKeys).all().item<bool>());
        Assert.True(restored.Experts.Keys.equal(original.Experts.Keys).all().item<bool>());
        Assert.False(restored.Experts.Keys.equal(restored.Experts.PreviousKeys).all().item<bool>());
    }

    [Fact]
    public void NoNoiseAtTestTime()
    {
        // Training a later task leaves noisy routing behind (noise on, frequent experts demoted); prediction must route
        // with plain top-K whatever the state, i.e. give the logits of a learner that never had noise.
        var settings = HideNorga.HideNorgaFixture.Settings(("noise_epsilon", 50.0));
        var noisyContext = Context(3, settings: settings);
        using var noisy = (Smope)MethodRegistry.Create("smope", noisyContext);
        using var clean = (Smope)MethodRegistry.Create("smope", Context(3, settings: settings));
        using var images = randn(4, 3, 16, 16);
        var evaluation = new EvaluationContext(2, Enumerable.Repeat(true, 10).ToArray(), null, null);
        using (no_grad())
        {
            noisy.Experts.Frequencies.copy_(arange(noisy.Experts.Frequencies.numel(), dtype: ScalarType.Float32).reshape(noisy.Experts.Frequencies.shape));
            noisy.Experts.Routing = noisy.Experts.Routing with { NoiseActive = true, NoiseEpsilon = 50, FrequentExperts = FrequentExpertRule.Paper };
            // Control: with that state the noise does change which experts are chosen.
            noisy.Experts.Record = true;
            noisy.Experts.ClearRecords();
            using (noisyContext.Backbone.ForwardFeatures(images, new VitForwardOptions { Prefixes = noisy.Experts })) { }
            var noisySelection = noisy.Experts.Records[0].Selected.clone();
            noisy.Experts.Routing = noisy.Experts.Routing with { NoiseActive = false };
            noisy.Experts.ClearRecords();
            using (noisyContext.Backbone.ForwardFeatures(images, new VitForwardOptions { Prefixes = noisy.Experts })) { }
            Assert.False(noisySelection.equal(noisy.Experts.Records[0].Selected).all().item<bool>(), "the noise would not change the routing");
            noisy.Experts.Record = false;
            noisy.Experts.ClearRecords();
            noisy.Experts.Routing = noisy.Experts.Routing with { NoiseActive = true };

            using var predicted = noisy.Predict(images, evaluation);
            using var reference = clean.Predict(images, evaluation);
            Assert.True(predicted.Logits.equal(reference.Logits).all().item<bool>());
        }
        Assert.False(noisy.Experts.Routing.NoiseActive);
    }

    [Theory]
    [InlineData(true, 24)]    // official: augmented data, frequencies over full batches only (drop_last)
    [InlineData(false, 32)]   // un-augmented, every sample
    public void EndOfTaskPassCountsFullBatchesOfAugmentedDataAsTheOfficialLoaderDoes(bool augmented, int countedSamples)
    {
        var scenario = HideNorga.HideNorgaFixture.Scenario();   // 2 tasks of 2 classes, 16 training images per class
        var data = new DataSource(16, [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f], 12, 7, CPU, workers: 1);   // 32 = 2 x 12 + 8
        var trainer = new ContinualTrainer(scenario, data, 3);
        var settings = HideNorga.HideNorgaFixture.Settings(("experts", 6), ("top_k", 2), ("augmented_statistics", augmented));
        using var smope = (Smope)MethodRegistry.Create("smope", HideNorga.HideNorgaFixture.Context(settings: settings));
        var task = trainer.Context(0);
        smope.EndTask(task);
        var blocks = smope.ExpertBlocks.Count;
        Assert.Equal(countedSamples * 2 * blocks * 3, (int)smope.Experts.Frequencies.sum().item<float>());
        Assert.True(smope.Experts.FrequentSet.any().item<bool>());
        Assert.True(smope.Experts.PreviousKeys.equal(smope.Experts.Keys).all().item<bool>());
    }

    [Fact]
    public void BadChoiceSettingsNameTheSettingAndTheChoices()
    {
        foreach (var (key, value) in new[] { ("schedule", "linear"), ("alignment_recipe", "sgd"), ("frequent_experts", "all"), ("loss_reduction", "max") })
        {
            var settings = new MethodSettings(new Dictionary<string, System.Text.Json.JsonElement>
            {
                [key] = System.Text.Json.JsonSerializer.SerializeToElement(value),
            });
            var error = Assert.Throws<ContinualMoEException>(() => MethodRegistry.Create("smope", Context(3, settings: settings)));
            Assert.Contains(key, error.Message);
            Assert.Contains(value, error.Message);
        }
    }

    [Fact]
    public void UnknownSettingListsTheValidOnes()
    {
        var settings = new MethodSettings(new Dictionary<string, System.Text.Json.JsonElement>
        {
            ["top_kk"] = System.Text.Json.JsonDocument.Parse("3").RootElement,
        });
        var error = Assert.Throws<ContinualMoEException>(() => MethodRegistry.Create("smope", Context(3, settings: settings)));
        Assert.Contains("top_kk", error.Message);
        Assert.Contains("top_k", error.Message);
    }
}
