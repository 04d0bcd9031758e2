using ContinualMoE.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Training;

/// <summary>The one per-class feature collection (issue 15 §5): rows kept per class in the order added, fit at once or
/// batch by batch (SAMoE's order, bit for bit what it computed when it merged inside its pass).</summary>
public class PerClassFeaturesTests(ITestOutputHelper output)
{
    private static readonly long[][] BatchLabels = [[0, 1, 0, 2, 1, 1, 0, 2], [1, 1, 2, 0, 0, 1, 2, 2], [2, 0, 1]];

    private static List<Tensor> Batches()
    {
        var generator = new Generator(7);
        return BatchLabels.Select(labels => randn(labels.Length, 5, generator: generator) * 3 + 2).ToList();
    }

    [Theory]
    [InlineData(CovarianceKind.Diagonal)]
    [InlineData(CovarianceKind.Full)]
    public void BatchByBatchFitIsBitForBitTheMergeOfEachBatchInsideThePass(CovarianceKind kind)
    {
        var batches = Batches();
        // What SAMoE did before it used the shared type: merge each batch's rows of each class as the pass goes.
        using var alongThePass = new GaussianClassStatistics(3, 5, kind);
        for (var b = 0; b < batches.Count; b++)
        {
            using var labels = tensor(BatchLabels[b]);
            foreach (var label in BatchLabels[b].Distinct())
                alongThePass.Merge((int)label, batches[b].index_select(0, labels.eq(label).nonzero().squeeze(1)));
        }
        using var collected = new GaussianClassStatistics(3, 5, kind);
        using var all = new GaussianClassStatistics(3, 5, kind);
        using (var features = new PerClassFeatures())
        {
            for (var b = 0; b < batches.Count; b++) features.Add(batches[b], BatchLabels[b]);
            features.MergeBatchByBatchInto(collected);
            features.MergeInto(all);
        }

        foreach (var (name, expected) in alongThePass.state_dict())
            Assert.True(expected.equal(collected.state_dict()[name]).all().item<bool>(), $"{name} differs from the merge along the pass");
        // At once the same statistics up to float rounding (Merge's float64 update against Set's float32 fit).
        foreach (var name in new[] { "means", "covariances" })
        {
            var difference = (all.state_dict()[name] - collected.state_dict()[name]).abs().max().item<float>();
            output.WriteLine($"{kind} {name}: largest difference at once vs batch by batch {difference:E2}");
            Assert.True(all.state_dict()[name].allclose(collected.state_dict()[name], rtol: 1e-5, atol: 1e-5), $"{name}: {difference}");
        }
        Assert.Equal(all.state_dict()["counts"].data<double>().ToArray(), collected.state_dict()["counts"].data<double>().ToArray());
        Assert.Equal([6.0, 7, 6], collected.state_dict()["counts"].data<double>().ToArray());
    }

    [Fact]
    public void EachClassGetsItsRowsInTheOrderAddedAndClassesInTheOrderFirstSeen()
    {
        var batches = Batches();
        var seen = new List<int>();
        using var features = new PerClassFeatures();
        for (var b = 0; b < batches.Count; b++) features.Add(batches[b], BatchLabels[b]);
        features.Add(1, batches[0][0]);   // one row
        features.ForEachClass((label, rows) =>
        {
            seen.Add(label);
            var expected = cat(batches.Select((batch, b) => batch.index_select(0, tensor(BatchLabels[b].Select((l, i) => (l, i)).Where(p => p.l == label).Select(p => (long)p.i).ToArray()))).ToArray(), 0);
            if (label == 1) expected = cat([expected, batches[0][0].unsqueeze(0)], 0);
            Assert.True(expected.equal(rows).all().item<bool>(), $"class {label}: rows differ");
        });
        Assert.Equal([0, 1, 2], seen);
    }
}
