using System.Buffers.Binary;
using ContinualMoE.Cli.Reporting;
using ContinualMoE.Evaluation;

namespace ContinualMoE.Tests.Reporting;

public class PlotsTests
{
    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Checks the PNG signature and returns width and height from the IHDR chunk.</summary>
    private static (int Width, int Height) ReadPng(string path)
    {
        var bytes = File.ReadAllBytes(path);
        Assert.True(bytes.Length > 24, $"{path} is too small to be a PNG");
        Assert.Equal(PngSignature, bytes[..8]);
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(bytes, 12, 4));
        return (BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));
    }

    private static void AssertNoTemporaryFiles(string folder) =>
        Assert.Empty(Directory.GetFiles(folder, "*.tmp", SearchOption.AllDirectories));

    private static AccuracyMatrix SampleMatrix(int tasks)
    {
        var a = new AccuracyMatrix(tasks);
        for (var t = 0; t < tasks; t++)
            for (var i = 0; i <= t; i++)
                a.Record(i, t, Math.Max(0, 95 - 4.0 * (t - i) - i));
        return a;
    }

    [Fact]
    public void Accuracy_heatmap_is_a_png_that_grows_with_the_task_count()
    {
        using var folder = new TemporaryFolder();
        Plots.AccuracyHeatmap(SampleMatrix(4), folder.File("small.png"));
        Plots.AccuracyHeatmap(SampleMatrix(10), folder.File("large.png"));
        var small = ReadPng(folder.File("small.png"));
        var large = ReadPng(folder.File("large.png"));
        Assert.True(small.Width > 200 && small.Height > 200);
        Assert.True(large.Width > small.Width && large.Height > small.Height);
        AssertNoTemporaryFiles(folder.Path);
    }

    [Fact]
    public void Accuracy_heatmap_handles_partial_and_single_task_matrices()
    {
        using var folder = new TemporaryFolder();
        var partial = new AccuracyMatrix(5);
        partial.Record(0, 0, 90);
        Plots.AccuracyHeatmap(partial, folder.File("partial.png"));
        Plots.AccuracyHeatmap(SampleMatrix(1), folder.File("one.png"));
        ReadPng(folder.File("partial.png"));
        ReadPng(folder.File("one.png"));
    }

    [Fact]
    public void Average_accuracy_curve_draws_every_method()
    {
        using var folder = new TemporaryFolder();
        var curves = new Dictionary<string, double[]>
        {
            ["SMoPE"] = [95, 91, 88, 86],
            ["L2P"] = [94, 87, 82, 79],
            ["partial run"] = [93, 85],
        };
        Plots.AverageAccuracyCurve(curves, folder.File("curve.png"));
        var (width, height) = ReadPng(folder.File("curve.png"));
        Assert.Equal((800, 500), (width, height));
        Assert.Throws<ContinualMoEException>(() =>
            Plots.AverageAccuracyCurve(new Dictionary<string, double[]>(), folder.File("none.png")));
    }

    [Fact]
    public void Expert_utilisation_heatmap_is_a_png()
    {
        using var folder = new TemporaryFolder();
        var frequency = new double[3, 8];
        for (var task = 0; task < 3; task++)
            for (var expert = 0; expert < 8; expert++)
                frequency[task, expert] = ((task * 3 + expert * 5) % 8) / 8.0;
        Plots.ExpertUtilisation(frequency, ["task 0", "task 1", "task 2"], folder.File("experts.png"), "Expert utilisation");
        var (width, height) = ReadPng(folder.File("experts.png"));
        Assert.True(width > height); // 8 experts wide, 3 tasks tall
        Assert.Throws<ContinualMoEException>(() =>
            Plots.ExpertUtilisation(frequency, ["only one"], folder.File("bad.png")));
    }

    [Fact]
    public void Expert_pool_growth_and_task_similarity_are_pngs()
    {
        using var folder = new TemporaryFolder();
        string[] labels = ["task 1", "task 2", "task 3"];
        Plots.PoolGrowth([0, 380, 200], [400, 20, 200], [2, 0, 1], [2, 2, 3], labels, folder.File("pool.png"));
        Plots.TaskSimilarity(new double[,] { { 1, 0.9, 0.1 }, { 0.9, 1, 0.2 }, { 0.1, 0.2, 1 } }, labels, folder.File("similarity.png"));
        ReadPng(folder.File("pool.png"));
        ReadPng(folder.File("similarity.png"));
        Assert.Throws<ContinualMoEException>(() => Plots.PoolGrowth([1], [1, 2], [0], [1], ["task 1"], folder.File("bad.png")));
        Assert.Throws<ContinualMoEException>(() => Plots.TaskSimilarity(new double[2, 2], labels, folder.File("bad.png")));
        AssertNoTemporaryFiles(folder.Path);
    }
}
