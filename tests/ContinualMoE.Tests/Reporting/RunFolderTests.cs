using ContinualMoE.Training;
using System.Text.Json;
using ContinualMoE.Cli.Reporting;
using ContinualMoE.Evaluation;

namespace ContinualMoE.Tests.Reporting;

public class RunFolderTests
{
    private static AccuracyMatrix Matrix()
    {
        var a = new AccuracyMatrix(2);
        a.Record(0, 0, 90); a.Record(0, 1, 80); a.Record(1, 1, 70);
        return a;
    }

    private static string[] FileNames(string folder) =>
        Directory.GetFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;

    [Fact]
    public void Writes_every_results_file_and_no_temporaries()
    {
        using var temp = new TemporaryFolder();
        var runPath = Path.Combine(temp.Path, "run");
        var run = RunFolder.Create(runPath);
        run.WriteConfig(new { Method = "smope", Tasks = 2, Seed = 1 });
        run.WriteAccuracyMatrix(Matrix());
        run.WriteMetrics(ContinualMetrics.Compute(Matrix(), testSetSizes: [10, 30]));
        run.AppendEpoch(new EpochRecord(0, "train", 0, 2, 1.5, 40, 120.5, 8.25, 0.01));
        run.AppendEpoch(new EpochRecord(0, "train", 1, 2, double.NaN, 55, 121, 8, 0.005));

        Assert.Equal(
            ["accuracy_matrix.csv", "config.json", "epochs.jsonl", "metrics.json", "run_manifest.json"],
            FileNames(runPath));

        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(runPath, "config.json"))))
            Assert.Equal("smope", config.RootElement.GetProperty("method").GetString());
        Assert.Equal(Matrix().ToCsv(), File.ReadAllText(Path.Combine(runPath, "accuracy_matrix.csv")));
        using (var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(runPath, "metrics.json"))))
        {
            Assert.Equal(75.0, metrics.RootElement.GetProperty("final_average_accuracy").GetDouble());
            Assert.Equal(72.5, metrics.RootElement.GetProperty("final_accuracy_over_samples").GetDouble());
            Assert.Equal(JsonValueKind.Null, metrics.RootElement.GetProperty("task_identity").ValueKind);
        }

        var lines = File.ReadAllLines(Path.Combine(runPath, "epochs.jsonl"));
        Assert.Equal(2, lines.Length);
        using (var first = JsonDocument.Parse(lines[0]))
        {
            Assert.Equal(120.5, first.RootElement.GetProperty("images_per_second").GetDouble());
            Assert.Equal(0.01, first.RootElement.GetProperty("learning_rate").GetDouble());
        }
        Assert.Contains("\"NaN\"", lines[1]); // a diverged epoch is still logged
    }

    [Fact]
    public void Existing_empty_folder_is_accepted()
    {
        using var temp = new TemporaryFolder();
        var run = RunFolder.Create(temp.Path);
        Assert.Equal(Path.GetFullPath(temp.Path), run.Path);
    }

    [Fact]
    public void Refuses_a_non_empty_folder_without_force_and_changes_nothing()
    {
        using var temp = new TemporaryFolder();
        File.WriteAllText(temp.File("notes.txt"), "mine");
        var error = Assert.Throws<ContinualMoEException>(() => RunFolder.Create(temp.Path));
        Assert.Contains("--force", error.Message);
        Assert.Equal(["notes.txt"], FileNames(temp.Path));
    }

    [Fact]
    public void Refuses_a_path_that_is_a_file()
    {
        using var temp = new TemporaryFolder();
        File.WriteAllText(temp.File("run"), "");
        Assert.Throws<ContinualMoEException>(() => RunFolder.Create(temp.File("run"), force: true));
    }

    [Fact]
    public void Force_deletes_only_files_listed_in_the_manifest()
    {
        using var temp = new TemporaryFolder();
        var first = RunFolder.Create(temp.Path);
        first.WriteAccuracyMatrix(Matrix());
        first.AppendEpoch(new EpochRecord(0, "train", 0, 2, 1, 1, 1, 1, 1));
        File.WriteAllBytes(first.ResultPath("heatmap.png"), [1, 2, 3]);
        File.WriteAllText(temp.File("notes.txt"), "mine");

        var second = RunFolder.Create(temp.Path, force: true);
        Assert.Equal(["notes.txt", "run_manifest.json"], FileNames(temp.Path));
        Assert.Empty(second.Files);

        // The new run starts a fresh epoch log instead of appending to the old one.
        second.AppendEpoch(new EpochRecord(1, "train", 0, 2, 1, 1, 1, 1, 1));
        Assert.Single(File.ReadAllLines(temp.File("epochs.jsonl")));
    }

    [Fact]
    public void Force_ignores_manifest_entries_outside_the_folder()
    {
        using var temp = new TemporaryFolder();
        var outside = Path.Combine(temp.Path, "keep.txt");
        File.WriteAllText(outside, "keep");
        var run = Path.Combine(temp.Path, "run");
        Directory.CreateDirectory(run);
        File.WriteAllText(Path.Combine(run, RunFolder.ManifestFileName), """{ "files": ["../keep.txt", "/etc/passwd"] }""");

        RunFolder.Create(run, force: true);
        Assert.True(File.Exists(outside));
    }

    [Fact]
    public void Result_names_must_be_plain_file_names()
    {
        using var temp = new TemporaryFolder();
        var run = RunFolder.Create(temp.Path);
        Assert.Throws<ContinualMoEException>(() => run.ResultPath("../escape.png"));
        Assert.Throws<ContinualMoEException>(() => run.ResultPath("sub/plot.png"));
        Assert.Throws<ContinualMoEException>(() => run.ResultPath(RunFolder.ManifestFileName));
        Assert.EndsWith("plot.png", run.ResultPath("plot.png"));
    }

    [Fact]
    public void Failed_write_leaves_the_previous_file_intact()
    {
        using var temp = new TemporaryFolder();
        var run = RunFolder.Create(temp.Path);
        run.WriteConfig(new { Seed = 1 });
        var before = File.ReadAllText(temp.File("config.json"));

        // Serialisation fails part-way (a property getter throws): the old config must survive, with no temp file left.
        Assert.ThrowsAny<Exception>(() => run.WriteConfig(new Exploding()));
        Assert.Equal(before, File.ReadAllText(temp.File("config.json")));
        Assert.Empty(Directory.GetFiles(temp.Path, "*.tmp"));
    }

    [Fact]
    public void Epoch_append_after_a_torn_line_starts_a_new_line()
    {
        using var temp = new TemporaryFolder();
        var run = RunFolder.Create(temp.Path);
        File.WriteAllText(run.ResultPath(RunFolder.EpochLogFileName), "{\"task\":0,\"ep");
        run.AppendEpoch(new EpochRecord(0, "train", 1, 2, 1, 1, 1, 1, 1));
        var lines = File.ReadAllLines(temp.File("epochs.jsonl"));
        Assert.Equal(2, lines.Length);
        using var parsed = JsonDocument.Parse(lines[1]);
        Assert.Equal(1, parsed.RootElement.GetProperty("epoch").GetInt32());
    }

    private sealed class Exploding
    {
        public int Fine => 1;
        public int Broken => throw new InvalidOperationException("boom");
    }
}
