using ContinualMoE.Cli.Commands;
using System.Text.Json.Nodes;
using ContinualMoE.Deployment;
using ContinualMoE.Evaluation;
using ContinualMoE.Experiments;
using ContinualMoE.Methods;
using ContinualMoE.Scenarios;
using ContinualMoE.Training;

namespace ContinualMoE.Tests.Deployment;

/// <summary>Model packages: versions written atomically, learning task after task as a run would, refusing a changed
/// backbone or a full capacity.</summary>
public class ModelPackageTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "cmoe-pkg-" + Guid.NewGuid().ToString("N"));

    internal static RunConfig NewModel(string method = "smope") => new RunConfig
    {
        Method = method, Backbone = "vit_nano_patch4_32", BackboneWeights = null, Epochs = 1, BatchSize = 16, LearningRate = 0.01, Seed = 3,
        ClassCapacity = 6, TaskCapacity = 3,
    }.WithOverrides(method == "smope" ? ["method.alignment_epochs=1", "method.experts=4", "method.top_k=2"] : []);

    [Fact]
    public void LearningTwoTasksOneByOneEqualsATwoTaskRunFromScratch()
    {
        var first = ImageFolderFixture.Write(Path.Combine(root, "a"), 0, 1);
        var second = ImageFolderFixture.Write(Path.Combine(root, "b"), 2, 3);
        var package = Path.Combine(root, "model");
        using (var model = DeployedModel.Create(NewModel(), null))
        {
            model.Learn(TaskSource.FromFolder(first));
            model.Save(package);
        }
        using var loaded = DeployedModel.Load(package);
        loaded.Learn(TaskSource.FromFolder(second));
        loaded.Save(package);
        Assert.Equal([1, 2], ModelPackage.Versions(package));

        // The same two tasks as one run of the trainer, from a fresh learner with the same seed.
        using var scratch = DeployedModel.Create(NewModel(), null);
        var names = new List<string>();
        var tasks = new[] { first, second }.Select((f, i) => scratch.LoadTask(TaskSource.FromFolder(f), i, names)).ToList();
        var scenario = new TaskListScenario(tasks, names, 6, 3);
        var results = new ContinualTrainer(scenario, scratch.Data, 3).Run(scratch.Learner);
        var learned = AccuracyMatrix.FromCsv(loaded.Manifest.AccuracyMatrix);
        for (var t = 0; t < 2; t++)
            for (var i = 0; i <= t; i++)
                Assert.Equal(results.Accuracy[i, t], learned[i, t]);
        var a = loaded.Learner.State();
        var b = scratch.Learner.State();
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, tensor) in a) Assert.True(tensor.allclose(b[name], 0, 0), $"state '{name}' differs");
        Assert.Equal(["c0", "c1", "c2", "c3"], loaded.Manifest.ClassNames);
        Assert.Equal([2, 3], loaded.Manifest.Tasks[1].Classes);
    }

    [Fact]
    public void KnownClassNamesKeepTheirLabelsAndCapacityIsEnforced()
    {
        using var model = DeployedModel.Create(NewModel("finetune-head"), null);
        model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(root, "a"), 0, 1, 2)));
        model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(root, "b"), 1, 3)));   // c1 again: new samples of a known class
        Assert.Equal([1, 3], model.Manifest.Tasks[1].Classes);
        var tooMany = Assert.Throws<ContinualMoEException>(() => model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(root, "c"), 4, 5, 6))));
        Assert.Contains("class capacity 6", tooMany.Message);
        model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(root, "d"), 4)));
        var full = Assert.Throws<ContinualMoEException>(() => model.Learn(TaskSource.FromFolder(Path.Combine(root, "a"))));
        Assert.Contains("task capacity", full.Message);
    }

    [Fact]
    public void ABackboneWithOtherWeightsOrADamagedStateIsRefusedInOneLine()
    {
        var package = Path.Combine(root, "model");
        using (var model = DeployedModel.Create(NewModel("finetune-head"), null))
        {
            model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(root, "a"), 0, 1)));
            model.Save(package);
        }
        // Another seed initialises the (random-init) backbone differently: not the weights the package was trained on.
        var manifestPath = Path.Combine(ModelPackage.VersionPath(package, 1), ModelPackage.ManifestFileName);
        var json = JsonNode.Parse(File.ReadAllText(manifestPath))!;
        json["config"]!["seed"] = 4;
        File.WriteAllText(manifestPath, json.ToJsonString());
        var error = Assert.Throws<ContinualMoEException>(() => DeployedModel.Load(package));
        Assert.Contains("backbone sha256", error.Message);
        Assert.DoesNotContain('\n', error.Message);

        json["config"]!["seed"] = 3;
        json["format"] = "continual-moe-package/0";
        File.WriteAllText(manifestPath, json.ToJsonString());
        Assert.Contains("package format", Assert.Throws<ContinualMoEException>(() => DeployedModel.Load(package)).Message);

        // A state file changed after it was written (here one byte of a tensor) is refused by its hash.
        json["format"] = PackageManifest.CurrentFormat;
        File.WriteAllText(manifestPath, json.ToJsonString());
        var statePath = Path.Combine(ModelPackage.VersionPath(package, 1), ModelPackage.StateFileName);
        var bytes = File.ReadAllBytes(statePath);
        bytes[^1] ^= 1;
        File.WriteAllBytes(statePath, bytes);
        var damaged = Assert.Throws<ContinualMoEException>(() => DeployedModel.Load(package));
        Assert.Contains("differs from the manifest's", damaged.Message);
        Assert.DoesNotContain('\n', damaged.Message);
    }

    [Fact]
    public void AnInterruptedLearnLeavesTheLastVersionLoadable()
    {
        var package = Path.Combine(root, "model");
        var data = ImageFolderFixture.Write(Path.Combine(root, "a"), 0, 1);
        double[] before;
        using (var model = DeployedModel.Create(NewModel("finetune-head"), null))
        {
            model.Learn(TaskSource.FromFolder(data));
            model.Save(package);
            before = model.Evaluate().Tasks.Select(t => t.Accuracy!.Value).ToArray();
        }
        // Cancelled mid-training: nothing is written.
        using (var model = DeployedModel.Load(package))
        using (var stop = new CancellationTokenSource())
        {
            var observer = new StopAfterFirstBatch(stop);
            Assert.ThrowsAny<OperationCanceledException>(() => model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(root, "b"), 2, 3)), observer, stop.Token));
        }
        // Killed while writing: a staging folder with a half-written state file is left behind and never read.
        var staging = Path.Combine(package, ".staging-v0002-dead");
        Directory.CreateDirectory(staging);
        File.WriteAllBytes(Path.Combine(staging, ModelPackage.StateFileName), [1, 2, 3]);
        Assert.Equal([1], ModelPackage.Versions(package));
        using (var model = DeployedModel.Load(package))
        {
            Assert.Equal(1, model.Manifest.Version);
            Assert.Equal(before, model.Evaluate().Tasks.Select(t => t.Accuracy!.Value).ToArray());
            model.Learn(TaskSource.FromFolder(Path.Combine(root, "b")));
            model.Save(package);
        }
        Assert.Equal([1, 2], ModelPackage.Versions(package));
        Assert.False(Directory.Exists(staging));
    }

    [Fact]
    public void AnExportedRunPredictsAsTheRunEvaluatedAndLearnsATaskNobodyPlannedFor()
    {
        var run = Path.Combine(root, "run");
        var config = new RunConfig
        {
            Method = "finetune-head", Backbone = "vit_nano_patch4_32", BackboneWeights = null, Tasks = 2, Epochs = 1, BatchSize = 16,
            GeneratedClasses = 4, GeneratedTrainPerClass = 12, GeneratedTestPerClass = 6, Seed = 5, ClassCapacity = 6, TaskCapacity = 3,
        };
        Assert.Equal(0, RunSession.Start(config, run, force: false, CancellationToken.None));
        var package = Path.Combine(root, "model");
        ModelCommands.ExportRun(run, package, CancellationToken.None);
        var runMatrix = AccuracyMatrix.FromCsv(File.ReadAllText(Path.Combine(run, "accuracy_matrix.csv")));
        using var model = DeployedModel.Load(package);
        Assert.Equal(new PackageCapacity(6, 3), model.Manifest.Capacity);
        Assert.Equal(4, model.Manifest.ClassNames.Count);
        // The package's learner evaluated on the run's held-out data gives the run's last column of the accuracy matrix.
        var evaluation = model.Evaluate();
        for (var i = 0; i < 2; i++) Assert.Equal(runMatrix[i, 1], evaluation.Tasks[i].Accuracy!.Value, 6);

        var result = model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(root, "new"), 5, 6)));
        Assert.Equal(3, result.Accuracy.Length);
        Assert.Equal(6, model.Manifest.ClassNames.Count);
        model.Save(package);
        Assert.Equal([1, 2], ModelPackage.Versions(package));
        Assert.Equal(2, ModelPackage.ReadManifest(package).History.Count);
        Assert.Contains("is not a run folder", Assert.Throws<ContinualMoEException>(() => ModelCommands.ExportRun(root, Path.Combine(root, "m2"), CancellationToken.None)).Message);
    }

    private sealed class StopAfterFirstBatch(CancellationTokenSource stop) : ITrainingObserver
    {
        public void BatchFinished(int task, string phase, int epoch, int batch, double loss, double imagesPerSecond) => stop.Cancel();
    }

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }
}
