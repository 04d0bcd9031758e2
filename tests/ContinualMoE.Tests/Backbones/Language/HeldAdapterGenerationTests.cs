using ContinualMoE.Backbones;
using ContinualMoE.Backbones.Language;
using ContinualMoE.LowRank;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary>
/// Generation and scoring hold the low-rank factors for their whole run (<see cref="LowRankExperts.BeginInference"/>),
/// and a bf16 model casts a layer input shared by q, k and v once when no gradient is recorded. Both must compute the
/// same numbers as the plain path (factors built per call, one cast per layer): the held factors are the same tensors
/// and the shared cast the same values, so logits and tokens are compared for equality, not within a tolerance.
/// </summary>
public class HeldAdapterGenerationTests
{
    /// <summary>The bank behind the plain path: forwards only <see cref="ILinearAdapterProvider.Delta"/>, so nothing is held
    /// and every layer's input is cast on its own.</summary>
    private sealed class PlainPath(ILinearAdapterProvider inner) : ILinearAdapterProvider
    {
        public Tensor? Delta(LinearSite site, Tensor input) => inner.Delta(site, input);
    }

    /// <summary>Counts the layers the model asks for a delta, forwarding everything else to the bank.</summary>
    private sealed class Counting(LowRankExperts inner) : ILinearAdapterProvider
    {
        public List<LinearSite> Asked { get; } = [];
        public Tensor? Delta(LinearSite site, Tensor input) { Asked.Add(site); return inner.Delta(site, input); }
        public bool Adapts(LinearSite site) => inner.Adapts(site);
        public IDisposable? BeginInference() => inner.BeginInference();
    }

    /// <summary>A bank with random A and B (so every expert acts) of <paramref name="experts"/> experts, all active.</summary>
    private static LowRankExperts Bank(DecoderLanguageModel model, string[] layers, int experts = 1, bool mergeable = false)
    {
        torch.random.manual_seed(21);
        var bank = LowRankExperts.Uniform(LowRankSites.Select(model, layers, null, "test"), experts, rank: 4, alpha: 8, mergeable);
        for (var e = 0; e < experts; e++) bank.Activate(e);
        using var noGrad = no_grad();
        for (var e = 0; e < experts; e++)
            for (var s = 0; s < bank.Sites.Count; s++) bank[e].Up(s).normal_(0, 0.3);
        return bank;
    }

    private static readonly IReadOnlyList<long>[] Prompts = [[5, 9, 13, 2, 7], [3, 11], [8, 1, 4]];

    /// <summary>Logits of the prompts (left-padded) and then of four one-token steps with the cache, as a generation runs them.</summary>
    private static Tensor StepLogits(DecoderLanguageModel model, ILinearAdapterProvider adapters)
    {
        using var noGrad = no_grad();
        using var held = adapters.BeginInference();
        using var cache = model.NewCache();
        var (ids, real) = TextGenerator.LeftPadded(Prompts, 5, 4);
        var mask = tensor(real!, [3, 9]);
        var pieces = new List<Tensor>();
        var next = tensor(ids, [3, 5]);
        for (var step = 0; step < 5; step++)
        {
            using var output = model.Forward(next, new LmForwardOptions { Adapters = adapters, Cache = cache, AttentionMask = mask.narrow(1, 0, cache.Length + next.shape[1]) });
            pieces.Add(output.Logits!.to(ScalarType.Float32).clone());
            next = tensor(new long[] { 6 + step, 2 + step, 10 - step }, [3, 1]);
        }
        return torch.cat(pieces, 1);
    }

    public static TheoryData<string, string, string> Models => new()
    {
        { "gpt2_tiny", "fp32", "qv" }, { "gpt2_tiny", "bf16", "qv" }, { "gpt2_tiny", "bf16", "all" },
        { "llama_tiny", "fp32", "qv" }, { "llama_tiny", "bf16", "qv" }, { "llama_tiny", "bf16", "all" },
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void HeldFactorsGiveThePlainPathsLogitsAndTokens(string folder, string precision, string layers)
    {
        var model = LmFixtures.Load(folder, precision == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32);
        using var bank = Bank(model, [layers]);

        var plain = StepLogits(model, new PlainPath(bank));
        var held = StepLogits(model, bank);
        Assert.Equal(0f, LmFixtures.MaxDifference(plain, held));
        using (var bare = StepLogits(model, new PlainPath(Bank(model, [layers], experts: 0))))
            Assert.True(LmFixtures.MaxDifference(bare, held) > 1e-3, $"{folder}: the experts do not change the logits");

        var settings = new GenerationSettings { MaxNewTokens = 8 };
        Assert.Equal(TextGenerator.Generate(model, Prompts, settings, new LmForwardOptions { Adapters = new PlainPath(bank) }),
            TextGenerator.Generate(model, Prompts, settings, new LmForwardOptions { Adapters = bank }));
    }

    /// <summary>SETA's case: several experts mixed per sample (<see cref="LowRankExperts.SampleWeights"/>) next to a
    /// merged delta; a new weights tensor inside the same held stretch is used, not the first one's columns.</summary>
    [Theory]
    [InlineData("gpt2_tiny")]
    [InlineData("llama_tiny")]
    public void HeldFactorsGiveThePlainPathsLogitsForAPerSampleMixtureWithAMergedExpert(string folder)
    {
        var model = LmFixtures.Load(folder, ScalarType.BFloat16);
        using var bank = Bank(model, ["qv", "mlp.in"], experts: 3, mergeable: true);
        bank.Merge(2);
        var first = tensor(new float[] { 1, 0.2f, 0, 0.5f, 0.5f, 0, 0, 1, 0 }, [3, 3]);
        var second = tensor(new float[] { 0, 1, 0, 1, 0, 0, 0.3f, 0.7f, 0 }, [3, 3]);
        try
        {
            bank.SampleWeights = first;
            var plainFirst = StepLogits(model, new PlainPath(bank));
            bank.SampleWeights = second;
            var plainSecond = StepLogits(model, new PlainPath(bank));
            Assert.True(LmFixtures.MaxDifference(plainFirst, plainSecond) > 1e-3, $"{folder}: the sample weights do not matter");

            using var noGrad = no_grad();
            using var held = bank.BeginInference();
            bank.SampleWeights = first;
            Assert.Equal(0f, LmFixtures.MaxDifference(plainFirst, StepLogits(model, bank)));
            bank.SampleWeights = second;
            Assert.Equal(0f, LmFixtures.MaxDifference(plainSecond, StepLogits(model, bank)));
        }
        finally { bank.SampleWeights = null; }
    }

    [Fact]
    public void ActivatingAnExpertWhileHeldChangesTheDeltaAndGradientsStillFlow()
    {
        var model = LmFixtures.Load("gpt2_tiny");
        using var bank = Bank(model, ["qv"], experts: 2);
        bank.Activate(1, false);
        var ids = tensor(new long[] { 4, 8, 15, 16, 23 }, [1, 5]);
        Tensor Logits(ILinearAdapterProvider adapters)
        {
            using var output = model.Forward(ids, new LmForwardOptions { Adapters = adapters });
            return output.Logits!.detach().clone();
        }

        using var held = bank.BeginInference();
        Tensor withOne, withTwo;
        using (no_grad())
        {
            withOne = Logits(bank);
            bank.Activate(1);
            withTwo = Logits(bank);
            Assert.Equal(0f, LmFixtures.MaxDifference(withTwo, Logits(new PlainPath(bank))));
        }
        Assert.True(LmFixtures.MaxDifference(withOne, withTwo) > 1e-3, "the second expert was not used after activation");

        // With gradients the held (detached) factors are not used: training inside a held stretch still reaches A and B.
        using var output = model.Forward(ids, new LmForwardOptions { Adapters = bank });
        output.Logits!.square().mean().backward();
        Assert.All(bank.TrainableParameters(), p => Assert.True(p.grad is not null && p.grad.abs().max().item<float>() > 0));
    }

    [Fact]
    public void ABf16ModelAsksOnlyForTheLayersTheBankAdapts()
    {
        var model = LmFixtures.Load("llama_tiny", ScalarType.BFloat16);
        using var bank = Bank(model, ["qv"]);
        var counting = new Counting(bank);
        using (no_grad())
        using (var output = model.Forward(tensor(new long[] { 1, 2, 3 }, [1, 3]), new LmForwardOptions { Adapters = counting })) { }
        Assert.Equal(bank.Sites.Select(s => s.Site), counting.Asked);
    }
}
