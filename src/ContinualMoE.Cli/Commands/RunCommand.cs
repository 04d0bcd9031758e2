using System.CommandLine;
using ContinualMoE.Cli.Reporting;
using ContinualMoE.Experiments;
using ContinualMoE.Methods;

namespace ContinualMoE.Cli.Commands;

/// <summary>
/// <c>continual-moe run</c>: one continual-learning experiment end to end. With no arguments it runs the embedded
/// default (generated benchmark, cached pretrained small ViT, SMoPE).
/// </summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var configFile = new Option<FileInfo?>("--config") { Description = "run config JSON file (command-line options override it)" };
        var method = new Option<string?>("--method") { Description = $"method: {string.Join(", ", MethodRegistry.Names)}" };
        var dataset = new Option<string?>("--dataset") { Description = "dataset name (generated, fashion-mnist, mnist, cifar10, cifar100, imagenet-r, cub200, image-folder)" };
        var dataRoot = new Option<string?>("--data-root") { Description = "dataset folder (default: the dataset's cache or system location)" };
        var download = new Option<bool>("--download") { Description = "download the dataset into the cache if missing (CIFAR, MNIST, Fashion-MNIST)" };
        var backbone = new Option<string?>("--backbone") { Description = "backbone config name" };
        var weights = new Option<string?>("--backbone-weights") { Description = "weights file (.safetensors or ViT .npz), 'pretrained-default', or 'none'" };
        var tasks = new Option<int?>("--tasks") { Description = "number of tasks" };
        var firstTask = new Option<int?>("--first-task-classes") { Description = "classes in the first task (the rest split evenly)" };
        var classOrder = new Option<string?>("--class-order") { Description = "file with an explicit class order" };
        var taskIncremental = new Option<bool>("--task-incremental") { Description = "evaluate with the true task's classes only" };
        var epochs = new Option<int?>("--epochs") { Description = "epochs per task" };
        var batchSize = new Option<int?>("--batch-size") { Description = "batch size" };
        var learningRate = new Option<double?>("--lr") { Description = "base learning rate" };
        var seed = new Option<int?>("--seed") { Description = "random seed (class order, initialisation, data order)" };
        var device = new Option<string?>("--device") { Description = "cpu, cuda or cuda:N" };
        var set = new Option<string[]>("--set") { Description = "override any setting: key=value, or method.key=value for a method setting", AllowMultipleArgumentsPerToken = true };
        var output = new Option<string?>("--output", "-o") { Description = "run folder (default: runs/<method>-<dataset>-<time>)" };
        var force = new Option<bool>("--force") { Description = "replace the results of a previous run in the output folder" };
        var resume = new Option<string?>("--resume") { Description = "continue the interrupted run in this folder" };

        var command = new Command("run", "run a continual-learning experiment (no arguments: the embedded default)")
        {
            configFile, method, dataset, dataRoot, download, backbone, weights, tasks, firstTask, classOrder, taskIncremental,
            epochs, batchSize, learningRate, seed, device, set, output, force, resume,
        };
        command.SetAction((parse, cancellation) =>
        {
            var overrides = new List<string>();
            void Add<T>(Option<T> option, string key, Func<T, string> format)
            {
                var result = parse.GetResult(option);
                if (result is null || result.Implicit) return;
                overrides.Add($"{key}={format(parse.GetValue(option)!)}");
            }
            static string Str(string? s) => System.Text.Json.JsonSerializer.Serialize(s);
            Add(method, "method", Str); Add(dataset, "dataset", Str); Add(dataRoot, "data_root", Str);
            Add(download, "download", b => b ? "true" : "false"); Add(backbone, "backbone", Str);
            Add(weights, "backbone_weights", w => w == "none" ? "null" : Str(w));
            Add(tasks, "tasks", v => v!.ToString()!); Add(firstTask, "first_task_classes", v => v!.ToString()!);
            Add(classOrder, "class_order_file", Str); Add(taskIncremental, "task_incremental", b => b ? "true" : "false");
            Add(epochs, "epochs", v => v!.ToString()!); Add(batchSize, "batch_size", v => v!.ToString()!);
            Add(learningRate, "learning_rate", v => v!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Add(seed, "seed", v => v!.ToString()!); Add(device, "device", Str);
            overrides.AddRange(parse.GetValue(set) ?? []);

            var resumeFolder = parse.GetValue(resume);
            if (resumeFolder is not null)
                return Task.FromResult(RunSession.Resume(resumeFolder, parse.GetValue(configFile)?.FullName, overrides, cancellation));
            var config = parse.GetValue(configFile) is { } file
                ? RunConfig.FromJson(ReadText(file.FullName), file.FullName)
                : new RunConfig();
            config = config.WithOverrides(overrides);
            var folder = parse.GetValue(output) ?? Path.Combine("runs", $"{config.Method}-{config.Dataset}-{DateTime.Now:yyyyMMdd-HHmmss}");
            return Task.FromResult(RunSession.Start(config, folder, parse.GetValue(force), cancellation));
        });
        return command;
    }

    private static string ReadText(string path)
    {
        if (!File.Exists(path)) throw ContinualMoEException.ForFile(path, "config file not found");
        return File.ReadAllText(path);
    }
}
