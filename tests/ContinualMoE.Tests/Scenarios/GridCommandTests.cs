using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ContinualMoE.Cli.Commands;

namespace ContinualMoE.Tests.Scenarios;

public class GridCommandTests
{
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
            var lines = File.ReadAllLines(Path.Combine(folder, "grid.csv"));
            Assert.Equal(5, lines.Length);   // header + 2 shots x 2 overlaps
            var row = lines[1].Split(',');
            Assert.Equal(new[] { "ncm", "2", "0", "2" }, row[..4]);
            // Mean and sample standard deviation of the two seeds' final average accuracies.
            var faa = new[] { 1, 2 }.Select(seed => JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "runs", $"ncm-shots2-overlap0-seed{seed}", "metrics.json")))
                .RootElement.GetProperty("metrics").GetProperty("final_average_accuracy").GetDouble()).ToArray();
            Assert.Equal(faa.Average(), double.Parse(row[4], CultureInfo.InvariantCulture), 2);
            Assert.Equal(Math.Abs(faa[0] - faa[1]) / Math.Sqrt(2), double.Parse(row[5], CultureInfo.InvariantCulture), 2);
            Assert.StartsWith("ncm,all,0.5,2,", lines[4]);
            Assert.True(File.Exists(Path.Combine(folder, "sample_efficiency.png")));
            Assert.True(File.Exists(Path.Combine(folder, "heatmap_ncm.png")));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }
}
