using ContinualMoE.Data;
using ContinualMoE.Methods;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Baselines;

public class FrozenFeatureCacheTests
{
    private sealed class NoImages : IImageDataset
    {
        public string Name => "none";
        public int Count => 100;
        public IReadOnlyList<string> ClassNames => ["a"];
        public int GetLabel(int index) => 0;
        public RawImage GetImage(int index) => throw new NotSupportedException();
    }

    [Fact]
    public void EachImageIsComputedOnceAndReusedUnchanged()
    {
        using var cache = new FrozenFeatureCache();
        var dataset = new NoImages();
        var computed = 0;
        var first = cache.GetOrCompute(new SampleIdentity(dataset, [3, 5]), () => { computed++; return randn(2, 4); });
        var again = cache.GetOrCompute(new SampleIdentity(dataset, [3, 5]), () => { computed++; return randn(2, 4); });
        Assert.Equal(1, computed);
        Assert.True(first.equal(again).all().item<bool>());
        // Another dataset or an unseen index is computed.
        cache.GetOrCompute(new SampleIdentity(new NoImages(), [3, 5]), () => { computed++; return randn(2, 4); });
        cache.GetOrCompute(new SampleIdentity(dataset, [3, 6]), () => { computed++; return randn(2, 4); });
        Assert.Equal(3, computed);
        Assert.Equal(2, cache.Hits);
    }

    [Fact]
    public void CachedQueriesGiveTheSamePredictionsAsFreshOnes()
    {
        using var l2p = BaselineFixture.Create<L2P>("l2p", BaselineFixture.Context());
        var images = BaselineFixture.Images(3);
        var seen = Enumerable.Repeat(true, 4).ToArray();
        var samples = new SampleIdentity(new NoImages(), [0, 1, 2]);
        using var noGrad = no_grad();
        using var fresh = l2p.Predict(images, new EvaluationContext(1, seen, null, null));
        using var first = l2p.Predict(images, new EvaluationContext(1, seen, null, null, samples));
        using var cached = l2p.Predict(images, new EvaluationContext(1, seen, null, null, samples));
        Assert.True(fresh.Logits.allclose(first.Logits, atol: 1e-6));
        Assert.True(fresh.Logits.allclose(cached.Logits, atol: 1e-6));
    }
}
