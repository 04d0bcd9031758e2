using ContinualMoE.Backbones;
using ContinualMoE.Methods;
using ContinualMoE.Prompts;
using ContinualMoE.Tests.Backbones;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Methods;

/// <summary>SMoPE's routing switches: the official test-time exclusion of never-used experts and the per-token-logits
/// ablation (aggregated_logits=false).</summary>
public class SmopeRoutingTests
{
    private const int Heads = 2, HeadDim = 4, Experts = 6;

    /// <summary>One prompted block whose experts 3..5 score far above 0..2 for any positive query; experts
    /// 0..<paramref name="used"/>-1 have been used.</summary>
    private static SparsePromptExperts Pool(int used)
    {
        var pool = new SparsePromptExperts([0], Heads, HeadDim, Experts);
        using var noGrad = no_grad();
        for (var j = 0; j < Experts; j++)
        {
            pool.Keys.select(0, 0).select(1, j).fill_(j < 3 ? 0.01 : 1 + 0.1 * j);
            pool.Frequencies.select(0, 0).select(1, j).fill_(j < used ? 1 : 0);
        }
        return pool;
    }

    private static Tensor Queries() => rand(3, Heads, 5, HeadDim, generator: new Generator(7)).add(0.1);

    private static Tensor Route(SparsePromptExperts pool, ExpertRouting routing)
    {
        pool.Routing = routing;
        pool.Record = true;
        pool.ClearRecords();
        using var queries = Queries();
        using (no_grad()) _ = pool.ForBlock(0, queries);
        return pool.Records[0].Selected.clone();
    }

    [Fact]
    public void ExcludingUnusedExpertsSelectsOnlyExpertsThatEarlierTasksUsed()
    {
        using var pool = Pool(used: 3);
        using var free = Route(pool, new ExpertRouting { TopK = 2 });
        using var excluded = Route(pool, new ExpertRouting { TopK = 2, ExcludeUnusedExperts = true });
        Assert.True(free.ge(3).all().item<bool>(), "without the rule the unused experts win");
        Assert.True(excluded.lt(3).all().item<bool>());
        Assert.Equal([3L, 2, 2], excluded.shape);
    }

    [Fact]
    public void ExcludingUnusedExpertsIsSkippedWhenFewerThanTopKWereUsed()
    {
        // The official rule only applies when every head has at least K used experts (else top-K would pick -inf).
        using var pool = Pool(used: 1);
        using var free = Route(pool, new ExpertRouting { TopK = 2 });
        using var excluded = Route(pool, new ExpertRouting { TopK = 2, ExcludeUnusedExperts = true });
        Assert.True(excluded.equal(free).all().item<bool>());
    }

    [Fact]
    public void PerTokenLogitsPrependTheSelectedExpertsKeysInsteadOfSharedScores()
    {
        using var pool = Pool(used: 6);
        using var queries = Queries();
        using var noGrad = no_grad();
        pool.Record = true;

        pool.ClearRecords();
        pool.Routing = new ExpertRouting { TopK = 2, AggregatedLogits = false };
        var perToken = pool.ForBlock(0, queries)!;
        var selected = pool.Records[0].Selected;
        Assert.Null(perToken.Logits);
        Assert.Equal([3L, Heads, 2, HeadDim], perToken.Keys!.shape);
        for (var b = 0; b < 3; b++)
            for (var h = 0; h < Heads; h++)
                for (var k = 0; k < 2; k++)
                {
                    var expert = selected[b, h, k].item<long>();
                    Assert.True(perToken.Keys[b, h, k].equal(pool.Keys[0, h, expert]).all().item<bool>());
                    Assert.True(perToken.Values[b, h, k].equal(pool.Values[0, h, expert]).all().item<bool>());
                }

        pool.ClearRecords();
        pool.Routing = new ExpertRouting { TopK = 2 };
        var aggregated = pool.ForBlock(0, queries)!;
        Assert.Null(aggregated.Keys);
        Assert.Equal([3L, Heads, 1, 2], aggregated.Logits!.shape);
        // Aggregated: s_j = mean_i(q_i) . k_j, scaled by d^-1/2, one row shared by every query token.
        var expected = einsum("bhd,hnd->bhn", queries.mean([2]), pool.Keys[0]).gather(2, pool.Records[0].Selected).mul(Math.Pow(HeadDim, -0.5));
        Assert.True(aggregated.Logits.squeeze(2).allclose(expected, rtol: 1e-6, atol: 1e-7));

        // Dense mode without aggregation hands over every expert's key.
        pool.Routing = new ExpertRouting { Sparse = false, AggregatedLogits = false };
        var dense = pool.ForBlock(0, queries)!;
        Assert.True(dense.Keys!.squeeze(0).equal(pool.Keys[0]).all().item<bool>());
    }

    [Fact]
    public void SmopeSettingsReachTheTestTimeRouting()
    {
        var settings = HideNorga.HideNorgaFixture.Settings(("exclude_unused_experts_at_test", true), ("aggregated_logits", false));
        var context = new MethodContext(new VisionTransformer(VitTestModels.Tiny, seed: 1), 10, 3, CPU, 3,
            new TrainingSettings(Epochs: 1, LearningRate: 0.01, BatchSize: 8), settings);
        using var smope = (Smope)MethodRegistry.Create("smope", context);
        using var images = randn(2, 3, 16, 16);
        using (no_grad())
        using (smope.Predict(images, new EvaluationContext(1, Enumerable.Repeat(true, 10).ToArray(), null, null))) { }
        Assert.True(smope.Experts.Routing.ExcludeUnusedExperts);
        Assert.False(smope.Experts.Routing.AggregatedLogits);

        using var plain = (Smope)MethodRegistry.Create("smope", context with { Settings = MethodSettings.Empty });
        using (no_grad())
        using (plain.Predict(images, new EvaluationContext(1, Enumerable.Repeat(true, 10).ToArray(), null, null))) { }
        Assert.False(plain.Experts.Routing.ExcludeUnusedExperts);
        Assert.True(plain.Experts.Routing.AggregatedLogits);
    }
}
