using ContinualMoE.Data;
using ContinualMoE.Data.Generated;

namespace ContinualMoE.Tests.Data;

public class GeneratedBenchmarkTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public void UpstreamAndContinualClassesAreDisjoint()
    {
        var benchmark = GeneratedBenchmark.Create(seed: 3, upstreamClasses: 20, continualClasses: 10, trainPerClass: 5, testPerClass: 2);
        var upstream = ((GeneratedImageDataset)benchmark.Upstream.Train).RecipeIds;
        var continual = ((GeneratedImageDataset)benchmark.Continual.Train).RecipeIds;
        Assert.Empty(upstream.Intersect(continual));
        Assert.Empty(benchmark.Upstream.Train.ClassNames.Intersect(benchmark.Continual.Train.ClassNames));
        Assert.Equal(continual, ((GeneratedImageDataset)benchmark.Continual.Test).RecipeIds);
        Assert.Equal(100, benchmark.Upstream.Train.Count);
        Assert.Equal(20, benchmark.Continual.Test.Count);
        Assert.Equal(9, benchmark.Continual.Test.GetLabel(19));
    }

    [Fact]
    public void GenerationIsDeterministicAndSamplesDiffer()
    {
        var a = GeneratedBenchmark.Create(7, 2, 3, 4, 2, size: 24).Continual;
        var b = GeneratedBenchmark.Create(7, 5, 3, 4, 2, size: 24).Continual; // upstream count must not matter
        var c = GeneratedBenchmark.Create(8, 2, 3, 4, 2, size: 24).Continual;
        var image = a.Train.GetImage(5);
        Assert.Equal((24, 24, 3), (image.Width, image.Height, image.Channels));
        Assert.Equal(image.Pixels, b.Train.GetImage(5).Pixels);
        Assert.NotEqual(image.Pixels, c.Train.GetImage(5).Pixels);
        Assert.NotEqual(image.Pixels, a.Train.GetImage(6).Pixels);
        Assert.NotEqual(a.Train.GetImage(0).Pixels, a.Test.GetImage(0).Pixels);
    }

    [Fact]
    public void NearestClassMeanOnPixelsBeatsChanceButIsNotPerfect()
    {
        const int classes = 10;
        var data = GeneratedBenchmark.Create(seed: 1, upstreamClasses: 1, continualClasses: classes, trainPerClass: 60, testPerClass: 30).Continual;
        var dimension = 32 * 32 * 3;
        var means = new double[classes, dimension];
        for (var i = 0; i < data.Train.Count; i++)
        {
            var pixels = data.Train.GetImage(i).Pixels;
            var label = data.Train.GetLabel(i);
            for (var d = 0; d < dimension; d++) means[label, d] += pixels[d] / 60.0;
        }
        var correct = 0;
        for (var i = 0; i < data.Test.Count; i++)
        {
            var pixels = data.Test.GetImage(i).Pixels;
            var best = -1;
            var bestDistance = double.MaxValue;
            for (var k = 0; k < classes; k++)
            {
                double distance = 0;
                for (var d = 0; d < dimension; d++) { var diff = pixels[d] - means[k, d]; distance += diff * diff; }
                if (distance < bestDistance) (best, bestDistance) = (k, distance);
            }
            if (best == data.Test.GetLabel(i)) correct++;
        }
        var accuracy = (double)correct / data.Test.Count;
        output.WriteLine($"nearest-class-mean accuracy {accuracy:P1}");
        Assert.True(accuracy > 0.3, $"accuracy {accuracy:P1} should clearly beat chance (10%)");
        Assert.True(accuracy < 0.97, $"accuracy {accuracy:P1} should not be perfect");
    }

    [Fact]
    public void ImagesGeneratedInParallelEqualThoseGeneratedOneByOne()
    {
        // The loader's workers generate images concurrently: each image must depend on its index only.
        var data = GeneratedBenchmark.Create(0, 1, 20, 50, 1).Continual.Train;
        var parallel = new byte[data.Count][];
        Parallel.For(0, data.Count, i => parallel[i] = data.GetImage(i).Pixels.ToArray());
        for (var i = data.Count - 1; i >= 0; i--)
            Assert.True(parallel[i].AsSpan().SequenceEqual(data.GetImage(i).Pixels), $"image {i} differs when generated in parallel");
    }
}
