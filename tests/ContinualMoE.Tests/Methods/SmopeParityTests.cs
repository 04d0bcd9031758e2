using System.Text.Json;
using ContinualMoE.Backbones;
using ContinualMoE.Prompts;
using ContinualMoE.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Methods;

/// <summary>
/// Component parity with the official SMoPE code (github.com/Minhchuyentoancbn/SMoPE, 27b982c). The fixture
/// Fixtures/smope_parity.json is written by tools/make_smope_parity_fixture.py, which runs the official classes
/// themselves (models/zoo.py OnePrompt, models/vit.py Attention, utils/schedulers.py, trainer.py's alignment) on small
/// random inputs with fixed weights.
/// </summary>
public class SmopeParityTests
{
    private static readonly Lazy<JsonElement> Fixture = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "smope_parity.json"))).RootElement);

    private static Tensor Load(string name)
    {
        var entry = Fixture.Value.GetProperty(name);
        var shape = entry.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
        var data = entry.GetProperty("data").EnumerateArray().Select(x => (float)x.GetDouble()).ToArray();
        return tensor(data).reshape(shape);
    }

    private static JsonElement Config(string name) => Fixture.Value.GetProperty(name);
    private static int Int(JsonElement config, string key) => config.GetProperty(key).GetInt32();
    private static double Double(JsonElement config, string key) => config.GetProperty(key).GetDouble();

    private static void AssertClose(Tensor expected, Tensor actual, double tolerance, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var difference = (expected - actual).abs().max().item<float>();
        Assert.True(difference <= tolerance, $"{what}: max difference {difference} > {tolerance}");
    }

    private const int Layers = 6;

    private static (SparsePromptExperts Experts, VitAttention[] Attention, JsonElement Config) OfficialPrompt()
    {
        var config = Config("prompt.config");
        var experts = new SparsePromptExperts(Enumerable.Range(0, Layers).ToArray(), Int(config, "heads"), Int(config, "head_dim"), Int(config, "experts"));
        var attentions = new VitAttention[Layers];
        using (no_grad())
        {
            experts.Keys.copy_(Load("prompt.keys"));
            experts.Values.copy_(Load("prompt.values"));
            experts.Frequencies.copy_(Load("prompt.frequencies"));
            experts.PreviousKeys.copy_(Load("prompt.old_keys"));
            for (var e = 0; e < Layers; e++)
            {
                attentions[e] = new VitAttention(Int(config, "heads") * Int(config, "head_dim"), Int(config, "heads"));
                foreach (var (name, tensor) in attentions[e].state_dict()) tensor.copy_(Load($"prompt.attention.{e}.{name}"));
            }
        }
        experts.UpdateFrequentExperts();
        return (experts, attentions, config);
    }

    [Fact]
    public void FrequentExpertSetMatchesProcessTaskCount()
    {
        var (experts, _, _) = OfficialPrompt();
        Assert.True(experts.FrequentSet.to(float32).equal(Load("prompt.frequent")).all().item<bool>());
    }

    [Theory]
    [InlineData("noisy")]
    [InlineData("dense")]
    [InlineData("test")]
    public void PromptedAttentionMatchesTheOfficialBlock(string mode)
    {
        var (experts, attentions, config) = OfficialPrompt();
        var topK = Int(config, "top_k");
        experts.Routing = mode switch
        {
            "noisy" => new ExpertRouting { TopK = topK, NoiseEpsilon = Double(config, "epsilon"), NoiseActive = true },
            "dense" => new ExpertRouting { Sparse = false },
            _ => new ExpertRouting { TopK = topK, ExcludeUnusedExperts = true },   // the official test-time rule for unused experts
        };
        experts.Record = true;
        using var noGrad = no_grad();
        for (var e = 0; e < Layers; e++)
        {
            var output = attentions[e].Forward(Load($"prompt.input.{e}"), experts, e);
            AssertClose(Load($"prompt.{mode}.output.{e}"), output, 2e-5, $"{mode} output of block {e}");
            if (mode == "dense") continue;
            var selected = experts.Records.Single(r => r.PromptedBlock == e).Selected.sort(-1).Values.to(float32);
            Assert.True(Load($"prompt.{mode}.selected.{e}").sort(-1).Values.equal(selected).all().item<bool>(), $"{mode} top-K of block {e}");
        }
        if (mode == "noisy")
        {
            for (var e = 0; e < Layers; e++)
                AssertClose(Load($"prompt.scores.{e}"), experts.Records.Single(r => r.PromptedBlock == e).Scores, 2e-5, $"scores of block {e}");
        }
    }

    [Fact]
    public void RouterAndPrototypeLossesMatchTheOfficialSums()
    {
        var (experts, attentions, config) = OfficialPrompt();
        var epsilon = Double(config, "epsilon");
        experts.Routing = new ExpertRouting { TopK = Int(config, "top_k"), NoiseEpsilon = epsilon, NoiseActive = true };
        experts.Record = true;
        for (var e = 0; e < Layers; e++) attentions[e].Forward(Load($"prompt.input.{e}"), experts, e);
        var router = experts.RouterLoss(epsilon).item<float>() * Double(config, "router_weight");
        var prototype = experts.PrototypeLoss().item<float>() * Double(config, "prototype_weight");
        Assert.Equal(Config("prompt.router_loss").GetDouble(), router, 4);
        Assert.Equal(Config("prompt.prototype_loss").GetDouble(), prototype, 4);
    }

    [Fact]
    public void CoswmRateMatchesAtEveryIteration()
    {
        var config = Config("schedule.coswm.config");
        var settings = new OptimizerSettings
        {
            Schedule = ScheduleKind.IterationCosine, LearningRate = Double(config, "lr"),
            FreezeIterations = Int(config, "freeze"), ScheduleIterationsPerEpoch = Int(config, "iter_step"),
        };
        var multipliers = new[] { Double(config, "prompt_multiplier"), 1.0 };
        var perEpoch = Int(config, "real_iterations_per_epoch");
        var expected = Config("schedule.coswm.rates").EnumerateArray().ToList();
        Assert.Equal(Int(config, "epochs") * perEpoch, expected.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            var groups = expected[i].EnumerateArray().Select(x => x.GetDouble()).ToArray();
            for (var g = 0; g < 2; g++)
            {
                var rate = Optimizers.Rate(settings, settings.LearningRate * multipliers[g], i / perEpoch, Int(config, "epochs"), i, perEpoch);
                Assert.True(Math.Abs(groups[g] - rate) <= 1e-12 + 1e-9 * groups[g], $"iteration {i}, group {g}: {rate} != {groups[g]}");
            }
        }
    }

    [Fact]
    public void CubCosineRateMatchesAtEveryIteration()
    {
        var config = Config("schedule.coda.config");
        var settings = new OptimizerSettings { Schedule = ScheduleKind.CodaCosine, LearningRate = Double(config, "lr") };
        var perEpoch = Int(config, "iterations_per_epoch");
        var expected = Config("schedule.coda.rates").EnumerateArray().ToList();
        for (var i = 0; i < expected.Count; i++)
        {
            var groups = expected[i].EnumerateArray().Select(x => x.GetDouble()).ToArray();
            var rate = Optimizers.Rate(settings, settings.LearningRate, i / perEpoch, Int(config, "epochs"), i, perEpoch);
            Assert.True(Math.Abs(groups[1] - rate) <= 1e-12, $"iteration {i}: {rate} != {groups[1]}");
        }
    }

    [Fact]
    public void AlignmentStatisticsArePopulationVariances()
    {
        var config = Config("alignment.config");
        var classes = Int(config, "classes");
        var features = Load("alignment.features.0");
        var statistics = new GaussianClassStatistics(classes, (int)features.shape[1], CovarianceKind.Diagonal, unbiased: false);
        for (var c = 0; c < classes; c++) statistics.Set(c, Load($"alignment.features.{c}"));
        AssertClose(Load("alignment.means"), statistics.Means, 1e-5, "means");
        AssertClose(Load("alignment.variances") + 1e-4, statistics.Covariances, 1e-5, "variances + 1e-4");
    }

    /// <summary>Our sampler seeded like the official run's global generator: the first epoch's Gaussian draws and
    /// shuffle, as far as the official loop consumed them.</summary>
    [Fact]
    public void AlignmentDrawsMatchTheOfficialGeneratorForTheSameSeed()
    {
        var config = Config("alignment.config");
        var classes = Int(config, "classes");
        var statistics = new GaussianClassStatistics(classes, (int)Load("alignment.features.0").shape[1], CovarianceKind.Diagonal, unbiased: false);
        for (var c = 0; c < classes; c++) statistics.Set(c, Load($"alignment.features.{c}"));
        var (features, labels) = statistics.SampleClasses(Enumerable.Range(0, classes), Int(config, "samples_per_class"),
            new Generator((ulong)Int(config, "seed")));
        var iterations = Int(config, "earlier_classes");
        var official = Load("alignment.batches").narrow(0, 0, iterations).reshape(-1, features.shape[1]);
        var officialLabels = Load("alignment.targets").narrow(0, 0, iterations).reshape(-1);
        Assert.True(officialLabels.equal(labels.narrow(0, 0, officialLabels.shape[0]).to(float32)).all().item<bool>(), "shuffled labels differ");
        AssertClose(official, features.narrow(0, 0, official.shape[0]), 1e-4, "drawn features");
    }

    [Fact]
    public void AlignmentUpdatesMatchOnTheOfficialDraws()
    {
        var config = Config("alignment.config");
        var classes = Int(config, "classes");
        var perClass = Int(config, "samples_per_class");
        var epochs = Int(config, "epochs");
        var iterations = Int(config, "earlier_classes");
        var batches = Load("alignment.batches");     // [epochs x iterations, batch, D]
        var targets = Load("alignment.targets").to(int64);
        var head = nn.Linear(batches.shape[2], classes);
        using (no_grad())
        {
            head.weight!.copy_(Load("alignment.head.weight.initial"));
            head.bias!.copy_(Load("alignment.head.bias.initial"));
        }
        var optimizer = new OptimizerSettings
        {
            Kind = OptimizerKind.AdamW, LearningRate = Double(config, "learning_rate"), WeightDecay = Double(config, "weight_decay"),
            Schedule = ScheduleKind.IterationCosine, CosineStartFactor = 0.1, FinalRate = 1e-6,
        };
        var settings = new AlignmentSettings(epochs, perClass, perClass, optimizer) { IterationsPerEpoch = iterations };
        var drawn = new List<int>();
        ClassifierAlignment.Run(head.forward, [new ParameterGroup("head", [head.weight!, head.bias!])], Enumerable.Repeat(true, classes).ToArray(),
            settings, epoch =>
            {
                drawn.Add(epoch);
                var rows = batches.narrow(0, epoch * iterations, iterations);
                return (rows.reshape(-1, rows.shape[2]), targets.narrow(0, epoch * iterations, iterations).reshape(-1));
            });
        Assert.Equal(Enumerable.Range(0, epochs), drawn);
        AssertClose(Load("alignment.head.weight.final"), head.weight!, 2e-5, "aligned head weight");
        AssertClose(Load("alignment.head.bias.final"), head.bias!, 2e-5, "aligned head bias");
        var rates = Config("alignment.rates").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        Assert.Equal(epochs * iterations, rates.Length);
        for (var i = 0; i < rates.Length; i++)
        {
            var rate = Optimizers.Rate(optimizer, optimizer.LearningRate, i / iterations, epochs, i, iterations);
            Assert.True(Math.Abs(rates[i] - rate) <= 1e-12, $"alignment step {i}: {rate} != {rates[i]}");
        }
    }
}
