using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using ContinualMoE.Cli.Commands;
using ContinualMoE.Tests.Sweeps;

namespace ContinualMoE.Tests.Scenarios;

public class GridCommandTests
{
    private static JsonElement Metrics(string runFolder) => JsonDocument.Parse(File.ReadAllText(Path.Combine(runFolder, "metrics.json"))).RootElement;

    [Fact]
    public void TinyGridTabulatesMeanAndStdOverSeedsAndPlots()
    {
        var folder = Path.Combine(Path.GetTempPath(), "cmoe-grid-" + Guid.NewGuid().ToString("N"));
        try
        {
            var code = GridCommand.Create().Parse([
                "--methods", "ncm", "--shots-grid", "2,all", "--overlap-grid", "0,0.5", "--seeds", "1,2",
                "--backbone", "vit_nano_patch4_32", "--backbone-weights", "none", "--tasks", "2",
                "--set", "generated_classes=4", "generated_train_per_class=8", "generated_test_per_class=4", "--output", folder,
            ]).Invoke();
            Assert.Equal(0, code);
            var report = Path.Combine(folder, "report");
            var lines = File.ReadAllLines(Path.Combine(report, "grid.csv"));
            Assert.Equal(5, lines.Length);   // header + 2 shots x 2 overlaps
            var header = lines[0].Split(',');
            var row = lines[1].Split(',');
            Assert.Equal(new[] { "generated", "2", "ncm", "2", "0", "2" }, row[..6]);
            string Cell(string[] r, string column) => r[Array.IndexOf(header, column)];
            // Mean and sample standard deviation of the two seeds' final average accuracies.
            var faa = new[] { 1, 2 }.Select(seed => Metrics(Path.Combine(folder, "runs", $"ncm-shots2-overlap0-seed{seed}"))
                .GetProperty("metrics").GetProperty("final_average_accuracy").GetDouble()).ToArray();
            Assert.Equal(faa.Average(), double.Parse(Cell(row, "final_average_accuracy_mean"), CultureInfo.InvariantCulture), 9);
            Assert.Equal(Math.Abs(faa[0] - faa[1]) / Math.Sqrt(2), double.Parse(Cell(row, "final_average_accuracy_std"), CultureInfo.InvariantCulture), 9);
            // Cost beside accuracy: NCM learns no parameters and needs one pass per test image.
            Assert.Equal("0;0", Cell(row, "trainable_parameters_after_each_task_mean"));
            Assert.Equal("1", Cell(row, "backbone_passes_per_test_image"));
            Assert.True(double.Parse(Cell(row, "test_images_per_second_mean"), CultureInfo.InvariantCulture) > 0);
            Assert.StartsWith("generated,2,ncm,all,0.5,2,", lines[4]);
            Assert.True(File.Exists(Path.Combine(report, "generated-tasks2_sample_efficiency.png")));
            Assert.True(File.Exists(Path.Combine(report, "generated-tasks2_heatmap_ncm.png")));
            Assert.Contains("| ncm | all | 0.5 | 2/2 |", File.ReadAllText(Path.Combine(report, "grid.md")));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void SweepSpecOverShotsAndOverlapWritesTheGridWithAGrowingPoolsParametersPerTask()
    {
        using var files = new SweepTestFiles();
        var spec = files.Spec("grid", new JsonObject
        {
            ["base"] = SweepTestFiles.TinyBase(tasks: 3, trainPerClass: 12),
            ["set"] = new JsonArray("scenario=overlap", "generated_classes=6", "method.alignment_epochs=1", "method.samples_per_expert=4"),
            ["axes"] = new JsonObject { ["method"] = new JsonArray("samoe", "ncm"), ["shots"] = new JsonArray(3), ["overlap"] = new JsonArray(0, 0.5), ["seed"] = new JsonArray(1) },
        });
        var folder = files.Folder("out");
        Assert.Equal(0, SweepCommand.Create().Parse([spec, "--output", folder]).Invoke());

        var report = Path.Combine(folder, "report");
        var lines = File.ReadAllLines(Path.Combine(report, "grid.csv"));
        Assert.Equal(5, lines.Length);   // header + 2 methods x 1 shots x 2 overlaps
        var header = lines[0].Split(',');
        var row = lines[2].Split(',');
        Assert.Equal(new[] { "generated", "3", "samoe", "3", "0.5", "1" }, row[..6]);
        var metrics = Metrics(Path.Combine(folder, "runs", "samoe-shots3-overlap0.5-seed1"));
        var perTask = metrics.GetProperty("trainable_parameters_after_task").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        Assert.Equal(3, perTask.Length);
        // A pool never shrinks (growth itself on novel data: SamoeTests, SamoeRunTests).
        Assert.True(perTask[0] > 0 && perTask.Zip(perTask.Skip(1)).All(p => p.First <= p.Second), string.Join(", ", perTask));
        Assert.Equal(metrics.GetProperty("cost").GetProperty("trainable_parameters").GetInt64(), perTask[^1]);
        Assert.Equal(string.Join(';', perTask), row[Array.IndexOf(header, "trainable_parameters_after_each_task_mean")]);
        Assert.Equal("2", row[Array.IndexOf(header, "backbone_passes_per_test_image")]);
        Assert.True(double.Parse(row[Array.IndexOf(header, "train_images_per_second_mean")], CultureInfo.InvariantCulture) > 0);
        Assert.True(File.Exists(Path.Combine(report, "generated-tasks3_sample_efficiency.png")));
        Assert.True(File.Exists(Path.Combine(report, "generated-tasks3_heatmap_samoe.png")));
        Assert.Contains("grid.md", File.ReadAllText(Path.Combine(report, "summary.md")));

        // A method with no complete run (its results deleted) keeps its rows, 0 of 1 seeds, and gets no heatmap.
        foreach (var rho in new[] { "0", "0.5" }) File.Delete(Path.Combine(folder, "runs", $"ncm-shots3-overlap{rho}-seed1", "metrics.json"));
        File.Delete(Path.Combine(report, "generated-tasks3_heatmap_ncm.png"));
        Assert.Equal(0, ReportCommand.Create().Parse([folder]).Invoke());
        Assert.Contains("| ncm | 3 | 0.5 | 0/1 | – |", File.ReadAllText(Path.Combine(report, "grid.md")));
        Assert.False(File.Exists(Path.Combine(report, "generated-tasks3_heatmap_ncm.png")));
        Assert.True(File.Exists(Path.Combine(report, "generated-tasks3_heatmap_samoe.png")));
    }
}
