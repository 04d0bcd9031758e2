using System.Security.Cryptography;
using System.Text.Json.Nodes;
using ContinualMoE.Cli.Commands;
using ContinualMoE.Cli.Sweeps;
using ContinualMoE.Data;
using ContinualMoE.Deployment;
using ContinualMoE.Experiments;
using ContinualMoE.Methods;
using ContinualMoE.Tests.Cli;

namespace ContinualMoE.Tests.Deployment;

/// <summary>The learn, predict and evaluate commands: a learn killed (SIGKILL) in another process, one writer per package,
/// dataset specs for --data, and the experts SMoPE chose per image.</summary>
public class LearnCommandTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "cmoe-learn-" + Guid.NewGuid().ToString("N"));

    private static int Invoke(string command, params string[] arguments) =>
        ModelCommands.Create().Single(c => c.Name == command).Parse(arguments).Invoke();

    private static Dictionary<string, string> FileHashes(string folder) =>
        Directory.GetFiles(folder, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(folder, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    [Fact]
    public void ALearnKilledInAnotherProcessLeavesThePreviousVersionAndTheNextLearnSucceeds()
    {
        var package = Path.Combine(root, "model");
        var second = ImageFolderFixture.Write(Path.Combine(root, "b"), 2, 3);
        double[] before;
        using (var model = DeployedModel.Create(ModelPackageTests.NewModel("finetune-head") with { Epochs = 40 }, null))
        {
            model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(root, "a"), 0, 1)));
            model.Save(package);
            before = model.Evaluate().Tasks.Select(t => t.Accuracy!.Value).ToArray();
        }
        var versionOne = FileHashes(ModelPackage.VersionPath(package, 1));

        // `continual-moe learn` as its own process, killed with SIGKILL once its first training epoch is done.
        var output = CliProcess.KillWhen(["learn", "-m", package, "-d", second], output => output.Any(line => line.Contains("epoch 1/")),
            whileRunning: () => Assert.True(FileLock.IsHeld(Path.Combine(package, ModelPackage.LockFileName)), "the learning process does not hold the package's write lock"));
        Assert.DoesNotContain(output, l => l.StartsWith("Version 2"));   // killed before it wrote a version

        // The previous version is byte for byte as it was and loads; the killed learn's staging folder is left, unlocked.
        Assert.Equal([1], ModelPackage.Versions(package));
        Assert.Equal(versionOne, FileHashes(ModelPackage.VersionPath(package, 1)));
        var stale = Assert.Single(Directory.GetDirectories(package, ".staging-*"));
        Assert.False(FileLock.IsHeld(Path.Combine(package, ModelPackage.LockFileName)));
        using (var model = DeployedModel.Load(package))
            Assert.Equal(before, model.Evaluate().Tasks.Select(t => t.Accuracy!.Value).ToArray());

        // The next learn succeeds, writes version 2 and removes the stale staging folder.
        Assert.Equal(0, Invoke("learn", "-m", package, "-d", second));
        Assert.Equal([1, 2], ModelPackage.Versions(package));
        Assert.False(Directory.Exists(stale));
        Assert.Empty(Directory.GetDirectories(package, ".staging-*"));
        Assert.Equal(2, ModelPackage.ReadManifest(package).Tasks.Count);
    }

    [Fact]
    public void OneWriterAtATimeAndAnAbandonedWriterLeavesNothing()
    {
        var package = Path.Combine(root, "model");
        using (var writer = ModelPackage.BeginVersion(package))
        {
            Assert.Equal(1, writer.Version);
            Assert.True(Directory.Exists(writer.StagingFolder));
            var busy = Assert.Throws<ContinualMoEException>(() => ModelPackage.BeginVersion(package));
            Assert.Contains("being written by another process", busy.Message);
        }
        Assert.Empty(Directory.GetDirectories(package, ".staging-*"));   // disposed without commit: staging removed
        using var again = ModelPackage.BeginVersion(package);
        Assert.Empty(again.RemovedStaleStaging);
    }

    [Fact]
    public void DataSpecsNameDatasetsWithClassSubsetsAndBadSpecsGetOneLine()
    {
        var folder = ImageFolderFixture.Write(Path.Combine(root, "folder"), 0, 1);
        Assert.True(DatasetSpec.Parse(folder).IsPlainFolder);
        var spec = DatasetSpec.Parse("generated:classes=0-2,5:train-per-class=4:test_per_class=2");
        Assert.Equal("generated", spec.Name);
        Assert.Equal("generated:classes=0-2,5:train-per-class=4:test-per-class=2", spec.ToString());
        Assert.Equal([0, 1, 2, 5], spec.SelectedLabels(Enumerable.Range(0, 8).Select(i => $"p{i}").ToList()));
        Assert.Equal([1, 3], DatasetSpec.Parse("fashion-mnist:classes=Trouser,Dress").SelectedLabels(["T-shirt/top", "Trouser", "Pullover", "Dress"]));
        Assert.Equal($"image-folder:{folder}", DatasetSpec.Parse($"image-folder:{folder}").ToString());

        foreach (var (bad, says) in new[]
                 {
                     ("no-such-data", "neither a folder nor a dataset name"), ("generated:colours=3", "unknown setting 'colours'"),
                     ("generated:train-per-class=0", "needs a positive integer"), ("image-folder", "image-folder needs its folder"),
                 })
        {
            var error = Assert.Throws<ContinualMoEException>(() => DatasetSpec.Parse(bad));
            Assert.Contains(says, error.Message);
            Assert.DoesNotContain('\n', error.Message);
        }
        var range = Assert.Throws<ContinualMoEException>(() => DatasetSpec.Parse("generated:classes=3-9").SelectedLabels(["a", "b", "c", "d"]));
        Assert.Contains("class 4 is out of range", range.Message);
        Assert.Contains("no class 'Boot'", Assert.Throws<ContinualMoEException>(() => DatasetSpec.Parse("fashion-mnist:classes=Boot").SelectedLabels(["Bag"])).Message);
        Assert.Contains("neither a folder nor a dataset name", Assert.Throws<ContinualMoEException>(() => TaskSource.FromData(Path.Combine(root, "missing"))).Message);
    }

    [Fact]
    public void LearnAndEvaluateTakeADatasetSpecWithAClassSubset()
    {
        var package = Path.Combine(root, "model");
        var names = GeneratedNames();
        using (var model = DeployedModel.Create(ModelPackageTests.NewModel("finetune-head"), null))
        {
            model.Learn(TaskSource.FromData("generated:classes=4,6:train-per-class=10:test-per-class=5"));
            model.Save(package);
        }
        Assert.Equal(0, Invoke("learn", "-m", package, "-d", $"generated:classes={names[7]},1:train-per-class=10:test-per-class=5"));
        var manifest = ModelPackage.ReadManifest(package);
        Assert.Equal([names[4], names[6], names[1], names[7]], manifest.ClassNames);
        Assert.Equal([2, 3], manifest.Tasks[1].Classes);
        Assert.Equal(TaskSource.DatasetKind, manifest.Tasks[1].Source.Kind);
        Assert.Equal([10, 5], new[] { manifest.Tasks[0].TrainImages / 2, manifest.Tasks[0].TestImages / 2 });

        var output = Path.Combine(root, "evaluation");
        Assert.Equal(0, Invoke("evaluate", "-m", package, "-d", "generated:classes=1,4:test-per-class=5", "-o", output));
        var evaluation = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "evaluation.json")))!;
        Assert.Equal(10, (int)evaluation["images"]!);
        Assert.Equal([names[1], names[4]], evaluation["classes"]!.AsArray().Select(c => (string)c!["name"]!).Order().ToArray());
        Assert.True(File.Exists(Path.Combine(output, "confusion_matrix.png")));
    }

    private static IReadOnlyList<string> GeneratedNames() =>
        Experiment.LoadData(ModelPackageTests.NewModel()).Train.ClassNames;

    [Fact]
    public void PredictShowsTheExpertsSmopeChosePerImage()
    {
        using var model = DeployedModel.Create(ModelPackageTests.NewModel(), null);
        model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(root, "a"), 0, 1)));
        var files = Directory.GetFiles(Path.Combine(ImageFolderFixture.Data(), "test"), "*.png", SearchOption.AllDirectories).Order().Take(5).ToList();
        var predictions = model.Predict(UnlabelledImages.FromPaths(files), topK: 2);
        var blocks = ((Smope)model.Learner).ExpertBlocks;
        foreach (var p in predictions)
        {
            var routing = p.Routing!;
            Assert.Equal(blocks.Select(b => $"block {b}"), routing.Select(r => r.Site));
            foreach (var r in routing)
            {
                Assert.Equal(2, r.Experts.Count);                                   // top_k=2 of 4 experts
                Assert.Equal(r.Experts.Count, r.Experts.Distinct().Count());
                Assert.All(r.Experts, e => Assert.InRange(e, 0, 3));
                Assert.True(r.Weights[0] >= r.Weights[1]);
                var heads = model.Backbone.Config.Heads;
                Assert.All(r.Weights, w => Assert.Equal(Math.Round(w * heads), w * heads, 6));   // a share of the heads
                Assert.InRange(r.Weights[0], 1.0 / 2, 1.0);   // with 2 of 4 experts per head, the most chosen has at least half the heads
            }
        }
        // Per image: an image's experts do not depend on the other images of its batch, and reporting them changes nothing.
        var alone = model.Predict(UnlabelledImages.FromPaths([files[3]]), topK: 2).Single();
        Assert.Equal(predictions[3].Routing!.Select(r => r.ToString()), alone.Routing!.Select(r => r.ToString()));
        Assert.Equal(predictions[3].Top.Select(c => c.Label), alone.Top.Select(c => c.Label));
        model.Evaluate();   // the learner without ReportRouting in between: predictions and routing as before
        var again = model.Predict(UnlabelledImages.FromPaths(files), topK: 2);
        Assert.Equal(predictions.Select(p => p.Top[0]), again.Select(p => p.Top[0]));
        Assert.Equal(predictions.Select(p => ModelCommands.RoutingText(p)), again.Select(p => ModelCommands.RoutingText(p)));

        var csv = ModelCommands.PredictionCsv(predictions).Split('\n');
        Assert.EndsWith(",experts", csv[0]);
        Assert.EndsWith("," + ModelCommands.RoutingText(predictions[0]), csv[1]);
        Assert.StartsWith($"block {blocks[0]}: ", ModelCommands.RoutingText(predictions[0]));
        var json = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(predictions, RunConfig.Json))!;
        Assert.Equal(blocks.Count, json[0]!["routing"]!.AsArray().Count);
        Assert.NotNull(json[0]!["routing"]![0]!["experts"]);
    }

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }
}
