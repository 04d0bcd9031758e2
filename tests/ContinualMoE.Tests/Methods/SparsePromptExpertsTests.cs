using ContinualMoE.Backbones;
using ContinualMoE.Methods;
using ContinualMoE.Prompts;
using ContinualMoE.Tests.Backbones;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Methods;

public class SparsePromptExpertsTests
{
    private const int Heads = 3, HeadDim = 8, Experts = 7, TopK = 3, Batch = 4, Tokens = 6;

    private static SparsePromptExperts MakeExperts(int[]? blocks = null)
    {
        torch.random.manual_seed(11);
        return new SparsePromptExperts(blocks ?? [0, 1], Heads, HeadDim, Experts) { Routing = new ExpertRouting { TopK = TopK } };
    }

    [Fact]
    public void SelectedExpertsEqualBruteForceTopKOfAggregatedScores()
    {
        var experts = MakeExperts();
        var queries = randn(Batch, Heads, Tokens, HeadDim);
        experts.Record = true;
        using var noGrad = no_grad();
        experts.ForBlock(1, queries);
        var selected = experts.Records.Single().Selected;
        for (var b = 0; b < Batch; b++)
        for (var h = 0; h < Heads; h++)
        {
            var qBar = new float[HeadDim];
            for (var n = 0; n < Tokens; n++)
                for (var d = 0; d < HeadDim; d++) qBar[d] += queries[b, h, n, d].item<float>() / Tokens;
            var scores = Enumerable.Range(0, Experts)
                .Select(j => Enumerable.Range(0, HeadDim).Sum(d => qBar[d] * experts.Keys[1, h, j, d].item<float>())).ToArray();
            var expected = Enumerable.Range(0, Experts).OrderByDescending(j => scores[j]).Take(TopK).Order().ToArray();
            var actual = selected[b, h].data<long>().Select(x => (int)x).Order().ToArray();
            Assert.Equal(expected, actual);
        }
        Assert.Null(experts.ForBlock(2, queries));
    }

    [Fact]
    public void UnselectedExpertsGetExactlyZeroGradientFromTheTaskLoss()
    {
        var vit = new VisionTransformer(VitTestModels.Tiny, seed: 5);
        var experts = MakeExperts([0, 2]);
        experts.Record = true;
        using var output = vit.ForwardFeatures(randn(2, 3, 16, 16), new VitForwardOptions { Prefixes = experts });
        output.Cls.square().sum().backward();
        for (var p = 0; p < 2; p++)
        {
            var record = experts.Records.Single(r => r.PromptedBlock == p);
            for (var h = 0; h < Heads; h++)
            {
                var chosen = record.Selected[.., h].flatten().data<long>().Select(x => (int)x).ToHashSet();
                for (var j = 0; j < Experts; j++)
                {
                    var keyGrad = experts.Keys.grad![p, h, j].abs().sum().item<float>();
                    var valueGrad = experts.Values.grad![p, h, j].abs().sum().item<float>();
                    if (chosen.Contains(j)) Assert.True(keyGrad > 0 && valueGrad > 0, $"selected expert {j} got no gradient");
                    else Assert.True(keyGrad == 0 && valueGrad == 0, $"unselected expert {j} (block {p}, head {h}) got a gradient");
                }
            }
        }
    }

    [Fact]
    public void TopKOfAllExpertsWithoutNoiseEqualsDenseAggregatedPrefixAttention()
    {
        var vit = new VisionTransformer(VitTestModels.Tiny, seed: 5);
        var experts = MakeExperts([0, 1, 2]);
        var images = randn(3, 3, 16, 16);
        using var noGrad = no_grad();
        experts.Routing = new ExpertRouting { Sparse = true, TopK = Experts };
        using var sparse = vit.ForwardFeatures(images, new VitForwardOptions { Prefixes = experts });
        experts.Routing = new ExpertRouting { Sparse = false };
        using var dense = vit.ForwardFeatures(images, new VitForwardOptions { Prefixes = experts });
        Assert.True(sparse.Tokens.allclose(dense.Tokens, rtol: 1e-4, atol: 1e-4), $"max difference {(sparse.Tokens - dense.Tokens).abs().max().item<float>()}");
        // Only the summation order differs (float32 rounding). With fewer experts the output differs: selection matters.
        experts.Routing = new ExpertRouting { Sparse = true, TopK = 2 };
        using var fewer = vit.ForwardFeatures(images, new VitForwardOptions { Prefixes = experts });
        Assert.False(fewer.Tokens.allclose(dense.Tokens, rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void AdaptiveNoisePenalisesExactlyTheFrequentExperts()
    {
        var experts = MakeExperts();
        using var noGrad = no_grad();
        // Block 0, every head: frequencies 0,1,2,...,6 -> mean 3 over all experts; experts 3..6 are frequent.
        experts.Frequencies[0].copy_(arange(Experts, dtype: float32).expand(Heads, Experts));
        experts.Routing = new ExpertRouting { TopK = TopK, NoiseEpsilon = 0.5, NoiseActive = true, FrequentExperts = FrequentExpertRule.Paper };
        var scores = randn(Batch, Heads, Experts);
        var penalty = experts.NoisePenalty(0, scores);
        var range = scores.amax([-1]) - scores.amin([-1]);
        for (var j = 0; j < Experts; j++)
        {
            var expected = j >= 3 ? range * 0.5 : zeros_like(range);
            Assert.True(penalty[.., .., j].allclose(expected, atol: 1e-6), $"expert {j}");
        }
        // The official code's rule averages over used experts only: mean of 1..6 = 3.5, so expert 3 is not frequent.
        experts.Routing = experts.Routing with { FrequentExperts = FrequentExpertRule.Official };
        Assert.DoesNotContain(true, experts.FrequentExperts(0)[0].data<bool>().ToArray());   // no task has finished yet
        experts.UpdateFrequentExperts();
        Assert.Equal(new[] { false, false, false, false, true, true, true }, experts.FrequentExperts(0)[0].data<bool>().ToArray());
    }

    [Fact]
    public void OfficialFrequentExpertSetOnlyGrows()
    {
        var experts = MakeExperts();
        experts.Routing = new ExpertRouting { TopK = TopK, FrequentExperts = FrequentExpertRule.Official };
        using var noGrad = no_grad();
        experts.Frequencies[0].copy_(tensor(new float[] { 0, 0, 10, 10, 1, 1, 0 }).expand(Heads, Experts));
        experts.UpdateFrequentExperts();   // mean over used = 22 / 4 = 5.5
        Assert.Equal(new[] { false, false, true, true, false, false, false }, experts.FrequentExperts(0)[1].data<bool>().ToArray());
        // A later task uses experts 5 and 6 heavily: they join, and 2 and 3 stay although now below the mean.
        experts.Frequencies[0].add_(tensor(new float[] { 0, 0, 0, 0, 0, 40, 40 }).expand(Heads, Experts));
        experts.UpdateFrequentExperts();   // mean over used = 103 / 5 = 20.6
        Assert.Equal(new[] { false, false, true, true, false, true, true }, experts.FrequentExperts(0)[2].data<bool>().ToArray());
        // The paper's rule is recomputed from the current frequencies: mean over all = 103 / 7.
        experts.Routing = experts.Routing with { FrequentExperts = FrequentExpertRule.Paper };
        Assert.Equal(new[] { false, false, false, false, false, true, true }, experts.FrequentExperts(0)[2].data<bool>().ToArray());
    }

    [Fact]
    public void SummedLossesAreTheMeanTimesBlocksHeadsAndSlots()
    {
        var experts = MakeExperts();
        experts.Record = true;
        experts.ForBlock(0, randn(Batch, Heads, Tokens, HeadDim));
        experts.ForBlock(1, randn(Batch, Heads, Tokens, HeadDim));
        var sum = experts.RouterLoss(0.4).item<float>();
        var mean = experts.RouterLoss(0.4, sum: false).item<float>();
        Assert.Equal(mean * 2 * Heads * TopK, sum, 3);
        using var noGrad = no_grad();
        experts.Frequencies.fill_(1);
        experts.UpdateFrequentExperts();   // every expert frequent: the same number of prototype rows in every head
        experts.SnapshotKeys();
        experts.Keys.add_(randn_like(experts.Keys));
        Assert.Equal(experts.PrototypeLoss(sum: false).item<float>() * 2 * Heads * TopK, experts.PrototypeLoss().item<float>(), 3);
    }

    [Fact]
    public void NoisyRoutingAvoidsFrequentExpertsOnlyWhileActive()
    {
        var experts = MakeExperts();
        var queries = randn(Batch, Heads, Tokens, HeadDim);
        using var noGrad = no_grad();
        experts.Record = true;
        experts.ForBlock(0, queries);
        var clean = experts.Records[0].Selected.clone();
        // Mark the experts chosen for sample 0, head 0 as the frequent ones; strong noise must route around them.
        var chosen = clean[0, 0].data<long>().ToArray();
        foreach (var j in chosen) experts.Frequencies[0, 0, j].fill_(10);
        experts.UpdateFrequentExperts();
        experts.ClearRecords();
        experts.Routing = new ExpertRouting { TopK = TopK, NoiseEpsilon = 2.0, NoiseActive = true };
        experts.ForBlock(0, queries);
        var noisy = experts.Records[0].Selected[0, 0].data<long>().ToArray();
        Assert.Empty(noisy.Intersect(chosen));
        experts.ClearRecords();
        experts.Routing = experts.Routing with { NoiseActive = false };
        experts.ForBlock(0, queries);
        Assert.True(experts.Records[0].Selected.equal(clean).all().item<bool>());
    }

    [Fact]
    public void FrequenciesCountTopKSelections()
    {
        var experts = MakeExperts();
        using var noGrad = no_grad();
        experts.Record = true;
        experts.ForBlock(0, randn(Batch, Heads, Tokens, HeadDim));
        experts.AccumulateFrequencies();
        Assert.Equal(Batch * TopK, (int)experts.Frequencies[0, 1].sum().item<float>());
        Assert.Equal(0, (int)experts.Frequencies[1].sum().item<float>());
        Assert.Empty(experts.Records);
    }

    [Fact]
    public void PrototypeLossGrowsWhenKeysDriftFromThePreviousTasksTopK()
    {
        var experts = MakeExperts();
        using var noGrad = no_grad();
        experts.Frequencies.fill_(1);
        experts.UpdateFrequentExperts();
        experts.SnapshotKeys();
        var unchanged = experts.PrototypeLoss().item<float>();
        experts.Keys.add_(randn_like(experts.Keys) * 2);
        var drifted = experts.PrototypeLoss().item<float>();
        Assert.True(drifted > unchanged, $"{drifted} <= {unchanged}");
    }
}
