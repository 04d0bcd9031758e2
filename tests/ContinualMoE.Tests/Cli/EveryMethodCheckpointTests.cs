using System.Text.Json;
using System.Text.Json.Nodes;
using ContinualMoE.Backbones;
using ContinualMoE.Checkpoints;
using ContinualMoE.Cli.Commands;
using ContinualMoE.Data.Transforms;
using ContinualMoE.Experiments;
using ContinualMoE.Methods;
using ContinualMoE.Training;
using System.CommandLine;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Cli;

/// <summary>
/// Issue 15 §3, in timm's registry-driven style: every method in <see cref="MethodRegistry"/> (so methods added later
/// are covered without touching this file) trains a tiny task, round-trips its state through a safetensors file with
/// identical predictions, leaves the backbone without gradients, and resumes a 3-task run stopped at a task boundary
/// and killed mid-task with the same accuracy matrix, metrics and epoch log as an uninterrupted run.
/// Cost per method: nano ViT, 3 tasks of 2 classes, 6 training and 3 test images per class, 1 epoch.
/// </summary>
public class EveryMethodCheckpointTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "cmoe-every-" + Guid.NewGuid().ToString("N"));
    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    public static TheoryData<string> Methods() => [.. MethodRegistry.Names];

    /// <summary>Settings that make a method's extra stages (alignment, expert pools) cheap, where the method has them.</summary>
    private static readonly Dictionary<string, string> CheapSettings = new()
    {
        ["alignment_epochs"] = "1", ["alignment_samples_per_class"] = "4", ["tii_alignment_epochs"] = "1",
        ["tii_alignment_samples_per_class"] = "4", ["tap_epochs"] = "1", ["tap_samples_per_class"] = "4",
        ["experts"] = "4", ["top_k"] = "2", ["pool_size"] = "4", ["sample_from"] = "20",
    };

    internal static RunConfig TinyRun(string method, string? weights = null)
    {
        var baseConfig = new RunConfig
        {
            Method = method,
            Backbone = "vit_nano_patch4_32",
            BackboneWeights = weights,
            Tasks = 3,
            Epochs = 1,
            BatchSize = 8,
            LearningRate = 0.01,
            GeneratedClasses = 6,
            GeneratedTrainPerClass = 6,
            GeneratedTestPerClass = 3,
            Seed = 3,
            Workers = 1,
        };
        var own = SettingsOf(method);
        return baseConfig.WithOverrides(CheapSettings.Where(s => own.Contains(s.Key)).Select(s => $"method.{s.Key}={s.Value}").ToList());
    }

    /// <summary>The method's setting names, read from the error an unknown setting produces (building trains nothing).</summary>
    private static IReadOnlyList<string> SettingsOf(string method)
    {
        using var backbone = new VisionTransformer(VitRegistry.Get("vit_nano_patch4_32"), 1);
        var probe = new MethodSettings(new Dictionary<string, JsonElement> { ["no_such_setting"] = JsonDocument.Parse("0").RootElement });
        try
        {
            using var learner = MethodRegistry.Create(method, new MethodContext(backbone, 6, 3, CPU, 1, new TrainingSettings(1, 0.01, 8), probe));
            return [];  // the method binds no settings at construction
        }
        catch (ContinualMoEException e) when (e.Message.Contains("its settings: "))
        {
            return e.Message[(e.Message.IndexOf("its settings: ", StringComparison.Ordinal) + "its settings: ".Length)..].Split(", ");
        }
    }

    [Theory]
    [MemberData(nameof(Methods))]
    public void StateRoundTripsThroughSafetensorsWithIdenticalPredictionsAndAFrozenBackbone(string method)
    {
        var config = TinyRun(method);
        using var trained = Experiment.Build(config, null);
        using (var stop = new CancellationTokenSource())
        {
            try { trained.Trainer().Run(trained.Learner, afterTask: (_, _) => stop.Cancel(), cancellation: stop.Token); }
            catch (OperationCanceledException) { }
        }
        foreach (var (name, p) in trained.Backbone.named_parameters())
        {
            Assert.False(p.requires_grad, $"{method}: backbone parameter {name} requires grad");
            Assert.True(p.grad is null, $"{method}: backbone parameter {name} has a gradient");
        }

        Directory.CreateDirectory(_root);
        var path = Path.Combine(_root, $"{method}.safetensors");
        SafeTensorsFile.Write(path, trained.Learner.State());
        using var restored = Experiment.Build(config, null);
        var loaded = SafeTensorsFile.Read(path);
        restored.Learner.LoadState(loaded);
        foreach (var t in loaded.Values) t.Dispose();  // the learner must have copied, not kept, the loaded tensors

        var test = (ContinualMoE.Data.IImageDataset)trained.Scenario.Tasks[0].Test;
        var pipeline = ImagePipeline.ForEvaluation(trained.Backbone.Config.ImageSize);
        using var images = stack(Enumerable.Range(0, Math.Min(6, test.Count)).Select(i => pipeline.ProcessToTensor(test.GetImage(i), 0, i)).ToArray());
        var context = new EvaluationContext(1, trained.Scenario.SeenClassMask(0), null, null);
        using var before = trained.Learner.Predict(images, context);
        using var after = restored.Learner.Predict(images, context);
        Assert.True(before.Logits.allclose(after.Logits, rtol: 1e-5, atol: 1e-5),
            $"{method}: predictions differ after the round trip (max {(before.Logits - after.Logits).abs().max().item<float>()})");
        if (before.PredictedTask is { } task) Assert.True(task.equal(after.PredictedTask!).all().item<bool>(), $"{method}: predicted tasks differ");
    }

    [Theory]
    [MemberData(nameof(Methods))]
    public void RunStoppedAtATaskBoundaryAndKilledMidTaskResumesToTheSameResults(string method)
    {
        var whole = Path.Combine(_root, "whole");
        Assert.Equal(0, RunSession.Start(TinyRun(method), whole, force: false, CancellationToken.None));

        var resumed = Path.Combine(_root, "resumed");
        using (var stop = new CancellationTokenSource())
            Assert.Equal(130, RunSession.Start(TinyRun(method), resumed, false, stop.Token, taskFinished: t => { if (t == 0) stop.Cancel(); }));
        // What a process killed during task 1 leaves behind: an epoch line of task 1 and a torn line.
        var trains = File.Exists(Path.Combine(whole, "epochs.jsonl"));  // methods without gradient training log no epochs
        if (trains)
        {
            var taskOneLine = File.ReadLines(Path.Combine(whole, "epochs.jsonl")).First(l => l.Contains("\"task\":1"));
            File.AppendAllText(Path.Combine(resumed, "epochs.jsonl"), taskOneLine + "\n" + taskOneLine[..(taskOneLine.Length / 2)]);
        }

        Assert.Equal(0, RunSession.Resume(resumed, null, [], CancellationToken.None));
        Assert.Equal(File.ReadAllText(Path.Combine(whole, "accuracy_matrix.csv")), File.ReadAllText(Path.Combine(resumed, "accuracy_matrix.csv")));
        Assert.Equal(Metrics(whole), Metrics(resumed));
        if (trains) Assert.Equal(EpochLog(whole), EpochLog(resumed));
        else Assert.False(File.Exists(Path.Combine(resumed, "epochs.jsonl")));
    }

    /// <summary>
    /// The same with a real crash: <c>continual-moe run</c> in its own process, killed with SIGKILL after task 1's
    /// checkpoint and an epoch of task 2 (wherever it was: mid-batch, mid-line of epochs.jsonl), then
    /// <c>continual-moe run --resume</c>. SMoPE, the method with the most state after a task (expert frequencies, class
    /// statistics, an aligned head). Each task trains for enough epochs that the kill lands inside task 2.
    /// </summary>
    [Fact]
    public void ARunProcessKilledMidTaskResumesToTheResultsOfAnUninterruptedRun()
    {
        var config = TinyRun("smope") with { Epochs = 5 };   // 2 dense warm-up + 5 sparse epochs per task
        var whole = Path.Combine(_root, "whole");
        Assert.Equal(0, RunSession.Start(config, whole, force: false, CancellationToken.None));

        var killed = Path.Combine(_root, "killed");
        var configFile = Path.Combine(_root, "config.json");
        File.WriteAllText(configFile, config.ToJson());
        var output = CliProcess.KillWhen(["run", "--config", configFile, "--output", killed], _ => LoggedEpochsOf(killed, task: 1) > 0);
        var checkpoint = SafeTensorsFile.Read(Path.Combine(killed, RunSession.CheckpointFileName), out var metadata);
        foreach (var t in checkpoint.Values) t.Dispose();
        Assert.True(metadata["finished_tasks"] == "1", $"the kill did not land inside task 2 (finished tasks {metadata["finished_tasks"]}): {string.Join(" | ", output)}");
        Assert.False(File.Exists(Path.Combine(killed, "metrics.json")));

        Assert.Equal(0, RunCommand.Create().Parse(["--resume", killed]).Invoke());
        Assert.Equal(File.ReadAllText(Path.Combine(whole, "accuracy_matrix.csv")), File.ReadAllText(Path.Combine(killed, "accuracy_matrix.csv")));
        Assert.Equal(Metrics(whole), Metrics(killed));
        Assert.Equal(EpochLog(whole), EpochLog(killed));   // every epoch once: the killed task's lines are not doubled
    }

    /// <summary>Complete lines of <paramref name="task"/> in a run's epochs.jsonl, read while the run may be writing it.</summary>
    private static int LoggedEpochsOf(string folder, int task)
    {
        string text;
        try { text = File.ReadAllText(Path.Combine(folder, "epochs.jsonl")); }
        catch (IOException) { return 0; }   // not written yet
        return text.Split('\n').SkipLast(1).Count(line => JsonNode.Parse(line)!["task"]!.GetValue<int>() == task);
    }

    /// <summary>metrics.json without what depends on the clock.</summary>
    private static string Metrics(string folder)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "metrics.json")))!.AsObject();
        return json["metrics"]!.ToJsonString() + json["cost"]!.ToJsonString();
    }

    /// <summary>epochs.jsonl lines without their timing fields.</summary>
    private static List<string> EpochLog(string folder) =>
        File.ReadAllLines(Path.Combine(folder, "epochs.jsonl")).Select(line =>
        {
            var entry = JsonNode.Parse(line)!.AsObject();
            entry.Remove("images_per_second");
            entry.Remove("seconds");
            return entry.ToJsonString();
        }).ToList();

    [Fact]
    public void ResumeAfterACrashBeforeTheFinalFilesWritesThem()
    {
        var folder = Path.Combine(_root, "crashed");
        Assert.Equal(0, RunSession.Start(TinyRun("ncm"), folder, false, CancellationToken.None));
        var metrics = Metrics(folder);
        var matrix = File.ReadAllText(Path.Combine(folder, "accuracy_matrix.csv"));
        foreach (var name in new[] { "metrics.json", "accuracy_matrix.png", "average_accuracy.png" }) File.Delete(Path.Combine(folder, name));
        // What a process killed while writing its checkpoint leaves beside it (AtomicFile's temporary), and a user's file.
        var leftover = Path.Combine(folder, $".{RunSession.CheckpointFileName}.{Guid.NewGuid():N}.tmp");
        File.WriteAllBytes(leftover, new byte[100]);
        File.WriteAllText(Path.Combine(folder, "notes.tmp"), "mine");

        Assert.Equal(0, RunSession.Resume(folder, null, [], CancellationToken.None));
        Assert.False(File.Exists(leftover));
        Assert.True(File.Exists(Path.Combine(folder, "notes.tmp")));
        Assert.Equal(metrics, Metrics(folder));
        Assert.Equal(matrix, File.ReadAllText(Path.Combine(folder, "accuracy_matrix.csv")));
        Assert.True(File.Exists(Path.Combine(folder, "average_accuracy.png")));
        // Everything there now: nothing to do, and nothing rewritten.
        var stamp = File.GetLastWriteTimeUtc(Path.Combine(folder, "metrics.json"));
        Assert.Equal(0, RunSession.Resume(folder, null, [], CancellationToken.None));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(Path.Combine(folder, "metrics.json")));
    }

    [Fact]
    public void DamagedOrForeignCheckpointMetadataIsAOneLineError()
    {
        var folder = Path.Combine(_root, "damaged");
        using (var stop = new CancellationTokenSource())
            RunSession.Start(TinyRun("ncm"), folder, false, stop.Token, taskFinished: _ => stop.Cancel());
        var checkpoint = Path.Combine(folder, RunSession.CheckpointFileName);
        var state = SafeTensorsFile.Read(checkpoint, out var metadata);

        foreach (var (key, value) in new[] { ("finished_tasks", (string?)null), ("config", null), ("finished_tasks", "x"), ("accuracy_matrix", "1,2\nnot,numbers") })
        {
            var damaged = new Dictionary<string, string>(metadata);
            if (value is null) damaged.Remove(key); else damaged[key] = value;
            SafeTensorsFile.Write(checkpoint, state, damaged);
            var error = Assert.Throws<ContinualMoEException>(() => RunSession.Resume(folder, null, [], CancellationToken.None));
            Assert.StartsWith(checkpoint + ": ", error.Message);
            Assert.DoesNotContain('\n', error.Message);
            Assert.Contains(key, error.Message);
        }

        SafeTensorsFile.Write(checkpoint, state, new Dictionary<string, string>(metadata) { ["format"] = "someone-else/2" });
        Assert.Contains("not a continual-moe-checkpoint", Assert.Throws<ContinualMoEException>(() => RunSession.Resume(folder, null, [], CancellationToken.None)).Message);
        foreach (var t in state.Values) t.Dispose();
    }

    [Fact]
    public void ResumeRefusesChangedBackboneWeights()
    {
        Directory.CreateDirectory(_root);
        var weights = Path.Combine(_root, "backbone.safetensors");
        using (var backbone = new VisionTransformer(VitRegistry.Get("vit_nano_patch4_32"), seed: 1))
            StateDictLoader.Save(backbone, weights);
        var folder = Path.Combine(_root, "weights");
        using (var stop = new CancellationTokenSource())
            RunSession.Start(TinyRun("ncm", weights), folder, false, stop.Token, taskFinished: _ => stop.Cancel());

        using (var other = new VisionTransformer(VitRegistry.Get("vit_nano_patch4_32"), seed: 2))
        {
            using (no_grad()) other.Head.weight!.add_(1);  // differ even where the seeds give the same initial values
            StateDictLoader.Save(other, weights);
        }
        var error = Assert.Throws<ContinualMoEException>(() => RunSession.Resume(folder, null, [], CancellationToken.None));
        Assert.Contains("backbone weights differ", error.Message);
    }
}
