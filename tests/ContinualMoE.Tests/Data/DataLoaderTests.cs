using ContinualMoE.Data;
using ContinualMoE.Data.Generated;
using ContinualMoE.Data.Transforms;
using TorchSharp;

namespace ContinualMoE.Tests.Data;

public class DataLoaderTests
{
    /// <summary>Wraps a dataset, counting decodes and optionally failing at one index.</summary>
    private sealed class Probe(IImageDataset inner, int failAt = -1) : IImageDataset
    {
        public int Decodes;
        public string Name => inner.Name;
        public int Count => inner.Count;
        public IReadOnlyList<string> ClassNames => inner.ClassNames;
        public int GetLabel(int index) => inner.GetLabel(index);

        public RawImage GetImage(int index)
        {
            Interlocked.Increment(ref Decodes);
            if (index == failAt) throw new ContinualMoEException($"broken sample {index}");
            return inner.GetImage(index);
        }
    }

    private static IImageDataset Data(int classes = 5, int perClass = 9) =>
        GeneratedBenchmark.Create(2, 1, classes, perClass, 1, size: 16).Continual.Train;

    private static List<(float[] Images, long[] Labels, int[] Indices)> Collect(DataLoader loader, int epoch)
    {
        var result = new List<(float[], long[], int[])>();
        foreach (var batch in loader.Epoch(epoch))
            using (batch)
                result.Add((batch.Images.data<float>().ToArray(), batch.Labels.data<long>().ToArray(), batch.Indices));
        return result;
    }

    [Fact]
    public void BatchesCoverTheEpochWithTheRightShapesAndLabels()
    {
        var data = Data();
        var loader = new DataLoader(data, ImagePipeline.ForTraining(8, augment: true), batchSize: 10, shuffle: true, seed: 1, workers: 2);
        var batches = new List<int[]>();
        foreach (var batch in loader.Epoch(0))
        {
            using (batch)
            {
                Assert.Equal(torch.ScalarType.Float32, batch.Images.dtype);
                Assert.Equal(torch.ScalarType.Int64, batch.Labels.dtype);
                Assert.Equal(new long[] { batch.Count, 3, 8, 8 }, batch.Images.shape);
                Assert.Equal(batch.Indices.Select(i => (long)data.GetLabel(i)), batch.Labels.data<long>().ToArray());
                batches.Add(batch.Indices);
            }
        }
        Assert.Equal(new[] { 10, 10, 10, 10, 5 }, batches.Select(b => b.Length));
        Assert.Equal(Enumerable.Range(0, 45), batches.SelectMany(b => b).Order());
        Assert.NotEqual(Enumerable.Range(0, 45), batches.SelectMany(b => b));
        Assert.Equal(5, loader.BatchesPerEpoch);
        Assert.Equal(4, new DataLoader(data, ImagePipeline.ForEvaluation(8), 10, false, 0) { DropLast = true }.Epoch(0).Count(b => { b.Dispose(); return true; }));
    }

    [Fact]
    public void SameSeedAndEpochGiveTheSameBatchesWhateverTheWorkerCount()
    {
        var data = Data();
        var pipeline = ImagePipeline.ForTraining(8, augment: true);
        var one = Collect(new DataLoader(data, pipeline, 8, true, seed: 4, workers: 1), epoch: 2);
        var two = Collect(new DataLoader(data, pipeline, 8, true, seed: 4, workers: 2) { Prefetch = 1 }, epoch: 2);
        Assert.Equal(one.Count, two.Count);
        for (var b = 0; b < one.Count; b++)
        {
            Assert.Equal(one[b].Indices, two[b].Indices);
            Assert.Equal(one[b].Labels, two[b].Labels);
            Assert.Equal(one[b].Images, two[b].Images);
        }
        var otherEpoch = Collect(new DataLoader(data, pipeline, 8, true, seed: 4), epoch: 3);
        Assert.NotEqual(one[0].Indices, otherEpoch[0].Indices);
        var unshuffled = Collect(new DataLoader(data, ImagePipeline.ForEvaluation(8), 8, false, seed: 4), epoch: 3);
        Assert.Equal(Enumerable.Range(0, 8), unshuffled[0].Indices);
    }

    [Fact]
    public void StoppingEarlyStopsTheBackgroundWork()
    {
        var probe = new Probe(Data(10, 50));
        var loader = new DataLoader(probe, ImagePipeline.ForEvaluation(8), batchSize: 4, shuffle: false, seed: 0, workers: 2) { Prefetch = 2 };
        foreach (var batch in loader.Epoch(0))
        {
            batch.Dispose();
            break;
        }
        var decodes = probe.Decodes;
        Thread.Sleep(200);
        Assert.Equal(decodes, probe.Decodes);
        Assert.True(decodes <= 4 * 5, $"{decodes} samples decoded, expected only the prefetched batches");
    }

    [Fact]
    public void ErrorsInWorkersReachTheConsumer()
    {
        var loader = new DataLoader(new Probe(Data(), failAt: 13), ImagePipeline.ForEvaluation(8), 4, false, 0, workers: 2);
        var seen = 0;
        var error = Assert.Throws<ContinualMoEException>(() =>
        {
            foreach (var batch in loader.Epoch(0)) { batch.Dispose(); seen++; }
        });
        Assert.Contains("broken sample 13", error.Message);
        Assert.Equal(3, seen);
    }

    [Fact]
    public void PipelineWithoutFixedSizeIsReported()
    {
        var mixed = new InMemoryImageDataset("mixed", ["a"], 2, 2, 1, new byte[8], [0, 0], planar: false);
        var loader = new DataLoader(new Subset(mixed, [0, 1]), new ImagePipeline(new GreyToRgb()), 2, false, 0);
        foreach (var batch in loader.Epoch(0)) batch.Dispose(); // same size: fine
        var varying = new DataLoader(new VaryingSize(), new ImagePipeline(new GreyToRgb()), 2, false, 0);
        Assert.Contains("fixed size", Assert.Throws<ContinualMoEException>(() => varying.Epoch(0).ToList()).Message);
    }

    private sealed class VaryingSize : IImageDataset
    {
        public string Name => "varying";
        public int Count => 2;
        public IReadOnlyList<string> ClassNames => ["a"];
        public int GetLabel(int index) => 0;
        public RawImage GetImage(int index) => new(index + 1, 1, 1, new byte[index + 1]);
    }
}
