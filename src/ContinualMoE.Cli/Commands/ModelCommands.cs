using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ContinualMoE.Checkpoints;
using ContinualMoE.Cli.Reporting;
using ContinualMoE.Deployment;
using ContinualMoE.Evaluation;
using ContinualMoE.Experiments;
using Spectre.Console;

namespace ContinualMoE.Cli.Commands;

/// <summary>
/// Commands on model packages (<see cref="ModelPackage"/>): <c>export</c> a finished run, <c>learn</c> the next task,
/// <c>predict</c> images, <c>evaluate</c> on labelled data.
/// </summary>
internal static class ModelCommands
{
    public static IEnumerable<Command> Create() => [Export(), Learn(), Predict(), Evaluate()];

    private static Option<string> ModelOption() => new("--model", "-m") { Description = "model package folder", Required = true };

    // ---- export ----

    private static Command Export()
    {
        var run = new Argument<string>("run-folder") { Description = "folder of a run (its checkpoint.safetensors and config.json)" };
        var output = new Option<string?>("--output", "-o") { Description = "package folder (default: <run folder>/model)" };
        var command = new Command("export", "make a model package from a run's latest checkpoint") { run, output };
        command.SetAction((parse, cancellation) =>
        {
            var folder = parse.GetValue(run)!;
            var target = parse.GetValue(output) ?? Path.Combine(folder, "model");
            ExportRun(folder, target, cancellation);
            AnsiConsole.MarkupLine($"Model package: [bold]{Markup.Escape(target)}[/] (version 1)");
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>Writes version 1 of a package at <paramref name="target"/> from the run's checkpoint.</summary>
    public static void ExportRun(string runFolder, string target, CancellationToken cancellation)
    {
        var checkpoint = Path.Combine(runFolder, RunSession.CheckpointFileName);
        if (!File.Exists(checkpoint)) throw ContinualMoEException.ForFile(checkpoint, "no checkpoint to export (the run has not finished a task, or this is not a run folder)");
        if (ModelPackage.Exists(target)) throw ContinualMoEException.ForFile(target, "already holds a model package; choose another --output");
        var state = SafeTensorsFile.Read(checkpoint, out var metadata);
        try
        {
            string Meta(string key) => metadata.TryGetValue(key, out var v) ? v : throw ContinualMoEException.ForFile(checkpoint, $"checkpoint metadata lacks '{key}'");
            if (Meta("format") != RunSession.CheckpointFormat) throw ContinualMoEException.ForFile(checkpoint, $"not a {RunSession.CheckpointFormat} checkpoint");
            var config = RunConfig.FromJson(Meta("config"), checkpoint);
            if (!int.TryParse(Meta("finished_tasks"), out var finished) || finished < 1)
                throw ContinualMoEException.ForFile(checkpoint, $"finished_tasks '{Meta("finished_tasks")}' is not a task count");
            ComputeDevice.ConfigureThreads();
            var weights = BackboneWeights.Resolve(config, cancellation);
            using var experiment = Experiment.Build(config, weights);
            if (metadata.TryGetValue(RunSession.BackboneHashKey, out var saved) && saved != RunSession.BackboneHash(experiment))
                throw ContinualMoEException.ForFile(weights ?? config.Backbone, "the backbone weights differ from the run's (sha256 mismatch); export with the weights the run used");
            experiment.Learner.LoadState(state.Where(kv => kv.Key.StartsWith("learner.")).ToDictionary(kv => kv.Key["learner.".Length..], kv => kv.Value));
            var manifest = DeployedModel.ExportManifest(experiment, weights, finished, AccuracyMatrix.FromCsv(Meta("accuracy_matrix")),
                metadata.TryGetValue("task_identity_matrix", out var tid) ? AccuracyMatrix.FromCsv(tid) : null, runFolder);
            ModelPackage.WriteVersion(target, manifest, experiment.Learner.State());
        }
        finally { foreach (var t in state.Values) t.Dispose(); }
    }

    // ---- learn ----

    private static Command Learn()
    {
        var model = ModelOption();
        var data = new Option<string>("--data", "-d")
        {
            Description = "the new task's labelled data: an image folder (class subfolders; train/ and test/, else a seeded 80/20 split) " +
                          "or a dataset spec name[:folder][:classes=0-4,7,name][:train-per-class=N][:test-per-class=N] (e.g. fashion-mnist:classes=0-4)",
            Required = true,
        };
        var runOptions = new RunOptions();
        var command = new Command("learn", "learn labelled data as the model's next task and write a new package version " +
                                           "(a missing package is created from the run options; set class_capacity and task_capacity)") { model, data };
        runOptions.AddTo(command);
        command.SetAction((parse, cancellation) =>
        {
            var folder = parse.GetValue(model)!;
            var source = TaskSource.FromData(parse.GetValue(data)!);
            // The write lock and the staging folder come first: a learn killed at any point leaves the versions as they were.
            using var writer = ModelPackage.BeginVersion(folder);
            foreach (var stale in writer.RemovedStaleStaging)
                AnsiConsole.MarkupLine($"Removed [bold]{Markup.Escape(stale)}[/], left by an interrupted learn or write");
            using var deployed = OpenOrCreate(folder, runOptions, parse, cancellation);
            var observer = new ConsoleObserver(null);
            var evaluation = observer.Run(() => deployed.Learn(source, observer, cancellation));
            var path = deployed.Save(writer);
            var table = new Table().AddColumns("task", "source", "test images", "accuracy (%)");
            foreach (var task in deployed.Manifest.Tasks)
                table.AddRow((task.Index + 1).ToString(CultureInfo.InvariantCulture), Markup.Escape(task.Source.ToString()),
                    evaluation.Counts[task.Index].ToString(CultureInfo.InvariantCulture), evaluation.Accuracy[task.Index].ToString("F2", CultureInfo.InvariantCulture));
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"Version {deployed.Manifest.Version}: [bold]{Markup.Escape(path)}[/] ({deployed.Manifest.ClassNames.Count} classes, {deployed.TasksLearned} tasks)");
            return Task.FromResult(0);
        });
        return command;
    }

    private static DeployedModel OpenOrCreate(string folder, RunOptions runOptions, ParseResult parse, CancellationToken cancellation)
    {
        var overrides = runOptions.Overrides(parse);
        ComputeDevice.ConfigureThreads();
        if (ModelPackage.Exists(folder))
        {
            if (overrides.Count > 0 || parse.GetValue(runOptions.ConfigFile) is not null)
                throw ContinualMoEException.ForFile(folder, "holds a model package already: run settings apply only when learn creates a new one");
            return DeployedModel.Load(folder);
        }
        var config = runOptions.Resolve(parse);
        RunSession.Validate(config);
        return DeployedModel.Create(config, BackboneWeights.Resolve(config, cancellation));
    }

    // ---- predict ----

    private static Command Predict()
    {
        var model = ModelOption();
        var inputs = new Argument<string[]>("images") { Description = "image files or folders (searched recursively)", Arity = ArgumentArity.OneOrMore };
        var topK = new Option<int>("--top-k", "-k") { Description = "classes per image", DefaultValueFactory = _ => 3 };
        var format = new Option<string>("--format") { Description = "table, csv or json", DefaultValueFactory = _ => "table" };
        var output = new Option<string?>("--output", "-o") { Description = "write the predictions to this file instead of the console" };
        var command = new Command("predict", "predict the classes of images with a model package") { model, inputs, topK, format, output };
        command.SetAction((parse, cancellation) =>
        {
            var chosen = parse.GetValue(format)!;
            if (chosen is not ("table" or "csv" or "json")) throw new ContinualMoEException($"--format '{chosen}' is not table, csv or json");
            ComputeDevice.ConfigureThreads();
            using var deployed = DeployedModel.Load(parse.GetValue(model)!);
            var images = UnlabelledImages.FromPaths(parse.GetValue(inputs)!);
            IReadOnlyList<ImagePrediction> predictions;
            if (AnsiConsole.Profile.Capabilities.Interactive)
                predictions = AnsiConsole.Progress().AutoClear(true).Start(context =>
                {
                    var bar = context.AddTask("predicting", maxValue: images.Count);
                    return deployed.Predict(images, parse.GetValue(topK), done => bar.Value = done, cancellation);
                });
            else predictions = deployed.Predict(images, parse.GetValue(topK), cancellation: cancellation);
            var file = parse.GetValue(output);
            if (chosen == "table" && file is null) { AnsiConsole.Write(PredictionTable(predictions)); return Task.FromResult(0); }
            var text = chosen switch
            {
                "json" => JsonSerializer.Serialize(predictions, RunConfig.Json),
                "csv" => PredictionCsv(predictions),
                _ => PredictionCsv(predictions),
            };
            if (file is null) Console.Out.Write(text);
            else AtomicFile.WriteAllText(file, text);
            return Task.FromResult(0);
        });
        return command;
    }

    private static Table PredictionTable(IReadOnlyList<ImagePrediction> predictions)
    {
        var table = new Table().AddColumns("image", "top classes (probability)");
        var withTask = predictions.Any(p => p.PredictedTask is not null);
        var withExperts = predictions.Any(p => p.Routing is { Count: > 0 });
        if (withTask) table.AddColumn("inferred task");
        if (withExperts) table.AddColumn("chosen experts (weight)");
        foreach (var p in predictions)
        {
            var top = string.Join(", ", p.Top.Select(c => $"{c.Name} ({c.Probability:P1})"));
            var row = new List<string> { Markup.Escape(p.Source), Markup.Escape(top) };
            if (withTask) row.Add(p.PredictedTask is int t ? (t + 1).ToString(CultureInfo.InvariantCulture) : "");
            if (withExperts) row.Add(Markup.Escape(string.Join("\n", p.Routing ?? [])));
            table.AddRow(row.ToArray());
        }
        return table;
    }

    /// <summary>The chosen experts of one image on one line: "block 0: 3 (1) 1 (0.75); block 1: ..." (blank without routing).</summary>
    public static string RoutingText(ImagePrediction prediction) => string.Join("; ", prediction.Routing ?? []);

    /// <summary>One row per image and rank: image, rank, label, class, probability, inferred task (1-based, blank when the
    /// method infers none), chosen experts (<see cref="RoutingText"/>, blank when the method routes to none).</summary>
    public static string PredictionCsv(IReadOnlyList<ImagePrediction> predictions)
    {
        static string Quote(string s) => s.Contains(',') || s.Contains('"') || s.Contains('\n') ? $"\"{s.Replace("\"", "\"\"")}\"" : s;
        var csv = new StringBuilder("image,rank,label,class,probability,inferred_task,experts\n");
        foreach (var p in predictions)
            for (var r = 0; r < p.Top.Count; r++)
                csv.Append(CultureInfo.InvariantCulture, $"{Quote(p.Source)},{r + 1},{p.Top[r].Label},{Quote(p.Top[r].Name)},{p.Top[r].Probability:G6},{(p.PredictedTask is int t ? t + 1 : "")},{Quote(RoutingText(p))}\n");
        return csv.ToString();
    }

    // ---- evaluate ----

    private static Command Evaluate()
    {
        var model = ModelOption();
        var data = new Option<string?>("--data", "-d") { Description = "labelled data: an image folder or a dataset spec as learn takes (default: the held-out data of every learned task)" };
        var all = new Option<bool>("--all-images") { Description = "with --data: every image (training and held-out split), not only the held-out split" };
        var output = new Option<string?>("--output", "-o") { Description = "folder for evaluation.json and confusion_matrix.png (default: <package>/evaluations/v<version>)" };
        var command = new Command("evaluate", "accuracy per task and class and the confusion matrix of a model package") { model, data, all, output };
        command.SetAction((parse, cancellation) =>
        {
            ComputeDevice.ConfigureThreads();
            var folder = parse.GetValue(model)!;
            var source = parse.GetValue(data) is { } d ? TaskSource.FromData(d) : null;
            using var deployed = DeployedModel.Load(folder);
            var evaluation = deployed.Evaluate(source, parse.GetValue(all), cancellation);
            var target = parse.GetValue(output) ?? Path.Combine(folder, "evaluations", $"v{deployed.Manifest.Version:D4}");
            Directory.CreateDirectory(target);
            ModelPlots.ConfusionMatrix(evaluation, Path.Combine(target, "confusion_matrix.png"));
            AtomicFile.WriteAllText(Path.Combine(target, "evaluation.json"), JsonSerializer.Serialize(new
            {
                evaluation.Accuracy, evaluation.Images, evaluation.Tasks, Classes = evaluation.Classes.Where(c => c.Images > 0),
            }, RunConfig.Json));
            var tasks = new Table().AddColumns("task", "images", "accuracy (%)");
            foreach (var t in evaluation.Tasks) tasks.AddRow((t.Task + 1).ToString(CultureInfo.InvariantCulture), t.Images.ToString(CultureInfo.InvariantCulture), t.Accuracy is double a ? a.ToString("F2", CultureInfo.InvariantCulture) : "-");
            AnsiConsole.Write(tasks);
            var classes = new Table().AddColumns("class", "task", "images", "accuracy (%)");
            foreach (var c in evaluation.Classes.Where(c => c.Images > 0))
                classes.AddRow(Markup.Escape(c.Name), c.Task is int t ? (t + 1).ToString(CultureInfo.InvariantCulture) : "not learned",
                    c.Images.ToString(CultureInfo.InvariantCulture), c.Accuracy is double a ? a.ToString("F2", CultureInfo.InvariantCulture) : "-");
            AnsiConsole.Write(classes);
            AnsiConsole.MarkupLine($"Accuracy {evaluation.Accuracy:F2}% on {evaluation.Images} images; confusion matrix and evaluation.json in [bold]{Markup.Escape(target)}[/]");
            return Task.FromResult(0);
        });
        return command;
    }
}
