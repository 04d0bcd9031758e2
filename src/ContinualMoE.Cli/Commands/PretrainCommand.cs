using System.CommandLine;
using ContinualMoE.Backbones;
using ContinualMoE.Checkpoints;
using ContinualMoE.Data;
using ContinualMoE.Experiments;
using Spectre.Console;

namespace ContinualMoE.Cli.Commands;

/// <summary><c>continual-moe pretrain</c>: trains a ViT from scratch and saves it as safetensors with timm names.</summary>
internal static class PretrainCommand
{
    public static Command Create()
    {
        var backbone = new Option<string>("--backbone") { Description = "backbone config name", DefaultValueFactory = _ => RunConfig.DefaultBackbone };
        var dataset = new Option<string>("--dataset") { Description = "dataset to pretrain on ('generated-upstream' or any dataset name)", DefaultValueFactory = _ => "generated-upstream" };
        var dataRoot = new Option<string?>("--data-root") { Description = "dataset folder" };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => DefaultBackbone.Settings.Epochs };
        var batchSize = new Option<int>("--batch-size") { DefaultValueFactory = _ => DefaultBackbone.Settings.BatchSize };
        var learningRate = new Option<double>("--lr") { DefaultValueFactory = _ => DefaultBackbone.Settings.LearningRate };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => DefaultBackbone.Settings.Seed };
        var device = new Option<string>("--device") { DefaultValueFactory = _ => "cpu" };
        var output = new Option<string?>("--output", "-o") { Description = "weights file to write (default: the cached default backbone)" };
        var force = new Option<bool>("--force") { Description = "overwrite an existing weights file" };
        var command = new Command("pretrain", "train a ViT from scratch (default: on the generated upstream classes) and save it as safetensors")
        {
            backbone, dataset, dataRoot, epochs, batchSize, learningRate, seed, device, output, force,
        };
        command.SetAction((parse, cancellation) =>
        {
            var config = parse.GetValue(backbone)!;
            var path = parse.GetValue(output) ?? DefaultBackbone.CachePath(config);
            if (File.Exists(path) && !parse.GetValue(force))
                throw ContinualMoEException.ForFile(path, "exists; pass --force to overwrite it");
            var name = parse.GetValue(dataset)!;
            var data = name == "generated-upstream"
                ? DefaultBackbone.UpstreamData(VitRegistry.Get(config).ImageSize).Upstream
                : DatasetCatalog.Load(name, new DatasetOptions { Root = parse.GetValue(dataRoot) });
            var settings = DefaultBackbone.Settings with
            {
                Epochs = parse.GetValue(epochs), BatchSize = parse.GetValue(batchSize), LearningRate = parse.GetValue(learningRate), Seed = parse.GetValue(seed),
                // Only a rebuild of the cached default backbone keeps its recipe's legacy init; anything else starts from timm's.
                Initialisation = name == "generated-upstream" && path == DefaultBackbone.CachePath(config)
                    ? DefaultBackbone.Settings.Initialisation : VitInitialisation.Timm,
            };
            PretrainAndSave(config, data, settings, path, parse.GetValue(device)!, cancellation);
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>Pretrains with a progress bar, reports test accuracy, and writes the weights atomically.</summary>
    public static void PretrainAndSave(string config, DatasetSplits data, PretrainSettings settings, string path, string deviceName, CancellationToken cancellation)
    {
        DefaultBackbone.KeepMklsOwnKernelsIfNeeded(settings);
        ComputeDevice.ConfigureThreads();
        var device = ComputeDevice.Parse(deviceName);
        var vit = VitRegistry.Get(config);
        VisionTransformer? model = null;
        var interactive = AnsiConsole.Profile.Capabilities.Interactive;
        void Train(Action<PretrainProgress> report) =>
            model = BackbonePretraining.Train(vit, data, settings, device, new Progress<PretrainProgress>(report), cancellation);
        if (interactive)
        {
            AnsiConsole.Progress().AutoClear(true).Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(),
                    new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(context =>
                {
                    var bar = context.AddTask("pretraining", maxValue: 1);
                    Train(p =>
                    {
                        bar.MaxValue = p.Epochs * p.Batches;
                        bar.Value = p.Epoch * p.Batches + p.Batch;
                        bar.Description = Markup.Escape($"pretraining epoch {p.Epoch + 1}/{p.Epochs} loss {p.Loss:F3} acc {p.Accuracy:F1}% {p.ImagesPerSecond:F0} img/s");
                    });
                });
        }
        else
        {
            Train(p =>
            {
                if (p.Batch == p.Batches)
                    AnsiConsole.MarkupLine(Markup.Escape($"pretraining epoch {p.Epoch + 1}/{p.Epochs}: loss {p.Loss:F3}, train acc {p.Accuracy:F1}%, {p.ImagesPerSecond:F0} img/s"));
            });
        }
        var accuracy = BackbonePretraining.Evaluate(model!, data.Test, settings.BatchSize, device);
        StateDictLoader.Save(model!, path, new Dictionary<string, string>
        {
            ["config"] = config, ["pretrained_on"] = data.Train.Name, ["test_accuracy"] = accuracy.ToString("F2", System.Globalization.CultureInfo.InvariantCulture),
        });
        AnsiConsole.MarkupLine($"Pretrained {Markup.Escape(config)}: test accuracy {accuracy:F1}% on {Markup.Escape(data.Test.Name)}; saved [bold]{Markup.Escape(path)}[/]");
        BenchCommand.WriteMklKernels();
        model!.Dispose();
    }
}
