using TorchSharp;
using ContinualMoE.Backbones;
using ContinualMoE.Prompts;
using ContinualMoE.Tests.Backbones;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Baselines;

public class PromptMechanismTests
{
    [Fact]
    public void TopKPicksTheMostSimilarKeys()
    {
        var keys = eye(6, 8);                                                // key i = e_i
        var queries = tensor(new float[,] { { 0, 0, 3, 2, 0.1f, 0, 0, 0 }, { 5, 0, 0, 0, 0, 0, 1, 0 } });
        var similarity = PromptMatching.Cosine(queries, keys);
        var selected = PromptMatching.TopK(similarity, 2);
        Assert.Equal(new long[] { 2, 3 }, selected[0].data<long>().ToArray());
        Assert.Equal(0L, selected[1, 0].item<long>());
        // Cosine is scale-free: the second query's top-1 is key 0 whatever its norm.
        Assert.Equal(0L, PromptMatching.TopK(PromptMatching.Cosine(queries * 100, keys), 1)[1, 0].item<long>());
        // Restricted to the first 2 keys, the first query can only pick 0 and 1.
        var restricted = PromptMatching.TopK(similarity, 1, candidates: 2);
        Assert.True(restricted.lt(2).all().item<bool>());
    }

    [Fact]
    public void BatchwiseVotingGivesEverySampleTheMajorityPrompts()
    {
        var selected = tensor(new long[,] { { 0, 1 }, { 0, 2 }, { 3, 0 }, { 2, 4 } });
        var voted = PromptMatching.Vote(selected, poolSize: 5, k: 2);
        Assert.Equal(new long[] { 4, 2 }, voted.shape);
        for (var b = 0; b < 4; b++) Assert.Equal(new long[] { 0, 2 }, voted[b].data<long>().ToArray());
    }

    [Fact]
    public void SplitTakesKeysFirstThenValues()
    {
        var prompt = arange(6 * 2, dtype: ScalarType.Float32).reshape(1, 6, 2);
        var (k, v) = PrefixPrompts.Split(prompt);
        Assert.Equal(new float[] { 0, 1, 2, 3, 4, 5 }, k.data<float>().ToArray());
        Assert.Equal(new float[] { 6, 7, 8, 9, 10, 11 }, v.data<float>().ToArray());
        Assert.Throws<ArgumentException>(() => PrefixPrompts.Split(zeros(1, 5, 2)));
    }

    [Fact]
    public void PerSamplePrefixesInOneBatchMatchSamplesRunOneByOne()
    {
        using var vit = BaselineFixture.Backbone();
        using var noGrad = no_grad();
        var images = BaselineFixture.Images(3, seed: 7);
        torch.random.manual_seed(9);
        var keys = randn(3, 4, 24);
        var values = randn(3, 4, 24);
        var shared = randn(1, 2, 24);
        PrefixPrompts Prefixes(Tensor k, Tensor v) => new PrefixPrompts(3).Add(0, k, v).Add(2, k, v).Add(2, shared, shared);
        using var batched = vit.ForwardFeatures(images, new VitForwardOptions { Prefixes = Prefixes(keys, values) });
        for (var i = 0; i < 3; i++)
        {
            using var single = vit.ForwardFeatures(images.narrow(0, i, 1),
                new VitForwardOptions { Prefixes = Prefixes(keys.narrow(0, i, 1), values.narrow(0, i, 1)) });
            Assert.True(BaselineFixture.Close(batched.Tokens.narrow(0, i, 1), single.Tokens, 1e-4));
        }
        // And the prefixes matter.
        using var plain = vit.ForwardFeatures(images);
        Assert.False(BaselineFixture.Close(plain.Cls, batched.Cls, 1e-3));
    }

    [Fact]
    public void PrefixHeadsAreSplitFromTheModelWidthInOrder()
    {
        var x = arange(2 * 1 * 6, dtype: ScalarType.Float32).reshape(2, 1, 6);
        var heads = PrefixPrompts.ToHeads(x, 3);                           // [2, 3, 1, 2]
        Assert.Equal(new long[] { 2, 3, 1, 2 }, heads.shape);
        Assert.Equal(new float[] { 8, 9 }, heads[1, 1, 0].data<float>().ToArray());
    }

    [Fact]
    public void GramSchmidtRowsAreOrthonormalAndLeaveEarlierRowsAlone()
    {
        torch.random.manual_seed(3);
        var rows = rand(6, 2, 5);
        var before = rows.narrow(0, 0, 2).clone();
        GramSchmidt.InitialiseRows(rows, 0, 2);
        var first = rows.narrow(0, 0, 2).clone();
        Assert.False(BaselineFixture.Close(before, first));
        GramSchmidt.InitialiseRows(rows, 2, 5);
        Assert.True(BaselineFixture.Close(first, rows.narrow(0, 0, 2)));
        var flat = rows.narrow(0, 0, 5).reshape(5, -1);
        Assert.True(BaselineFixture.Close(flat.matmul(flat.t()), eye(5), 1e-4));
    }
}
