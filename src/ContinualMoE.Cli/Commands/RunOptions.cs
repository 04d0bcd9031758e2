using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ContinualMoE.Experiments;
using ContinualMoE.Methods;

namespace ContinualMoE.Cli.Commands;

/// <summary>The options that define a run, shared by <c>run</c> and <c>compare</c>: a config file plus overrides.</summary>
internal sealed class RunOptions
{
    public Option<FileInfo?> ConfigFile { get; } = new("--config") { Description = "run config JSON file (command-line options override it)" };
    private readonly List<Option> options = [];
    private readonly List<Func<ParseResult, string?>> overrides = [];

    public RunOptions()
    {
        options.Add(ConfigFile);
        Setting<string?>("--method", "method", $"method: {string.Join(", ", MethodRegistry.Names)}", Json);
        Setting<string?>("--dataset", "dataset", "dataset name (generated, fashion-mnist, mnist, cifar10, cifar100, imagenet-r, cub200, image-folder), or a text task stream: generated-text, text:<spec> with spec cl-benchmark, long-sequence, cl-benchmark-csv, trace or jsonl (docs/text-datasets.md)", Json);
        Setting<string?>("--data-root", "data_root", "dataset folder (default: the dataset's cache or system location)", Json);
        Setting<bool>("--download", "download", "download the dataset into the cache if missing (CIFAR, MNIST, Fashion-MNIST)", b => b ? "true" : "false");
        Setting<string?>("--backbone", "backbone", "backbone: a registry name, or a geometry vit:image=,patch=,width=,depth=,heads=,mlp-ratio=,eps= (settings left out come from the weights); for text datasets a Hugging Face model folder", Json);
        Setting<string?>("--backbone-weights", "backbone_weights", "weights file (.safetensors or ViT .npz) or transformers model folder, 'pretrained-default', or 'none'", w => w == "none" ? "null" : Json(w));
        Setting<int?>("--tasks", "tasks", "number of tasks", Number);
        Setting<int?>("--first-task-classes", "first_task_classes", "classes in the first task (the rest split evenly)", Number);
        Setting<string?>("--class-order", "class_order_file", "file with an explicit class order", Json);
        Setting<bool>("--task-incremental", "task_incremental", "evaluate with the true task's classes only", b => b ? "true" : "false");
        Setting<string?>("--scenario", "scenario", "class-incremental, overlap or blurry (docs/scenarios.md)", Json);
        Setting<int?>("--shots", "shots", "training images per class per task (default: all)", Number);
        Setting<double?>("--overlap", "overlap", "overlap scenario: fraction rho (0..1) of each later task's classes seen before", v => v!.Value.ToString(CultureInfo.InvariantCulture));
        Setting<double?>("--blurry", "blurry", "blurry scenario: fraction of each task's training images from other tasks' classes", v => v!.Value.ToString(CultureInfo.InvariantCulture));
        Setting<bool>("--forward-transfer", "forward_transfer", "also train each task alone for forward transfer (about doubles training time)", b => b ? "true" : "false");
        Setting<int?>("--epochs", "epochs", "epochs per task", Number);
        Setting<int?>("--batch-size", "batch_size", "batch size", Number);
        Setting<double?>("--lr", "learning_rate", "base learning rate", v => v!.Value.ToString(CultureInfo.InvariantCulture));
        Setting<int?>("--seed", "seed", "random seed (class order, initialisation, data order)", Number);
        Setting<string?>("--device", "device", "cpu, cuda or cuda:N", Json);
        Setting<string?>("--precision", "precision", "frozen backbone's number format: fp32 (default), bf16, fp16 (CUDA only), or auto (bf16 for the methods measured bf16-safe, on a CPU with native bf16)", Json);
        var set = new Option<string[]>("--set") { Description = "override any setting: key=value, or method.key=value for a method setting", AllowMultipleArgumentsPerToken = true };
        options.Add(set);
        overrides.Add(parse => parse.GetValue(set) is { Length: > 0 } values ? string.Join('\n', values) : null);
    }

    private void Setting<T>(string name, string key, string description, Func<T, string> format)
    {
        var option = new Option<T>(name) { Description = description };
        options.Add(option);
        overrides.Add(parse => parse.GetResult(option) is { Implicit: false } ? $"{key}={format(parse.GetValue(option)!)}" : null);
    }

    private static string Json(string? s) => JsonSerializer.Serialize(s);
    private static string Number(int? v) => v!.Value.ToString(CultureInfo.InvariantCulture);

    public void AddTo(Command command)
    {
        foreach (var option in options) command.Options.Add(option);
    }

    /// <summary>The "key=value" overrides given on the command line.</summary>
    public List<string> Overrides(ParseResult parse) =>
        overrides.Select(o => o(parse)).OfType<string>().SelectMany(s => s.Split('\n')).ToList();

    /// <summary>The config file (or the defaults) with the command line's overrides applied.</summary>
    public RunConfig Resolve(ParseResult parse)
    {
        var config = new RunConfig();
        if (parse.GetValue(ConfigFile) is { } file)
        {
            if (!file.Exists) throw ContinualMoEException.ForFile(file.FullName, "config file not found");
            config = RunConfig.FromJson(File.ReadAllText(file.FullName), file.FullName);
        }
        return config.WithOverrides(Overrides(parse));
    }
}
