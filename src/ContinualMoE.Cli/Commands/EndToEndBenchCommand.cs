using System.CommandLine;
using System.Globalization;
using ContinualMoE.Backbones;
using ContinualMoE.Benchmarks;
using ContinualMoE.Experiments;
using ContinualMoE.Methods;
using Spectre.Console;

namespace ContinualMoE.Cli.Commands;

/// <summary>
/// <c>continual-moe bench run</c> (issue 16 §3): a fixed small continual run per method (the embedded default scenario
/// and backbone with one epoch per task, or any run config with --config/--set), fp32 and bf16, with the wall time
/// split into data, forward, backward, optimiser, end-of-task work and evaluation, the backbone's GFLOP/s against a
/// matmul measured in the same process at the same precision, and peak memory. --vit-base adds a ViT-B/16 row with
/// random weights (one task of a few hundred generated images resized to 224 px): what a full-scale run costs here.
/// </summary>
internal static class EndToEndBenchCommand
{
    public static Command Create()
    {
        var runOptions = new RunOptions();
        var methods = new Option<string>("--methods") { Description = "comma-separated methods, or 'all' (every image method)", DefaultValueFactory = _ => "all" };
        var precision = new Option<string>("--precision") { Description = "fp32, bf16, auto (each method's resolved default) or both (fp32 and bf16)", DefaultValueFactory = _ => "both" };
        var vitBase = new Option<bool>("--vit-base") { Description = "add a ViT-B/16 row (random weights, one task)" };
        var vitBaseOnly = new Option<bool>("--vit-base-only") { Description = "only the ViT-B/16 row" };
        var vitBaseMethod = new Option<string>("--vit-base-method") { Description = "method of the ViT-B/16 row", DefaultValueFactory = _ => "smope" };
        var vitBaseImages = new Option<int>("--vit-base-images") { Description = "training images of the ViT-B/16 row (test: half as many)", DefaultValueFactory = _ => 200 };
        var csv = new Option<FileInfo?>("--csv") { Description = "also write the rows to this CSV file" };
        var command = new Command("run", "end-to-end: a small continual run per method, time split into data/forward/backward/optimiser/evaluation, GFLOP/s against matmul")
        {
            methods, precision, vitBase, vitBaseOnly, vitBaseMethod, vitBaseImages, csv,
        };
        runOptions.AddTo(command);
        command.SetAction((parse, cancellation) =>
        {
            ComputeDevice.ConfigureThreads();
            // The fixed small run: the embedded default with one epoch per task, unless the command line says otherwise.
            var baseConfig = new RunConfig { Epochs = 1 }.WithOverrides(runOptions.Overrides(parse));
            if (parse.GetValue(runOptions.ConfigFile) is not null) baseConfig = runOptions.Resolve(parse);
            var precisions = parse.GetValue(precision) switch
            {
                "both" => new[] { ComputePrecision.Fp32, ComputePrecision.Bf16 },
                var one => [one!],
            };
            var device = ComputeDevice.Parse(baseConfig.Device);
            var names = parse.GetValue(methods) is "all"
                ? MethodRegistry.Names.Where(n => MethodRegistry.Modalities(n).HasFlag(Data.InputModality.Image)).ToList()
                : parse.GetValue(methods)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToList();
            foreach (var name in names) MethodRegistry.EnsureKnown(name);

            var runs = new List<RunConfig>();
            if (!parse.GetValue(vitBaseOnly))
                foreach (var name in names)
                    foreach (var p in precisions)
                        runs.Add(PrecisionPolicy.Resolve(baseConfig with { Method = name, Precision = p }));
            if (parse.GetValue(vitBase) || parse.GetValue(vitBaseOnly))
            {
                var images = parse.GetValue(vitBaseImages);
                foreach (var p in precisions)
                    runs.Add(PrecisionPolicy.Resolve(new RunConfig
                    {
                        Method = parse.GetValue(vitBaseMethod)!, Backbone = "vit_base_patch16_224", BackboneWeights = null, Precision = p,
                        Tasks = 1, Epochs = 1, BatchSize = 16, GeneratedClasses = 4, GeneratedTrainPerClass = Math.Max(1, images / 4),
                        GeneratedTestPerClass = Math.Max(1, images / 8), Seed = baseConfig.Seed, Device = baseConfig.Device,
                    }));
            }

            var matmul = runs.Select(r => r.Precision).Distinct()
                .ToDictionary(p => p, p => BackboneBenchmark.MeasureMatmulGflops(device, 3.0, ComputePrecision.Parse(p, device)));
            var table = new Table().AddColumns("method", "backbone", "precision", "final acc %", "wall s", "data s", "forward s",
                "backward s", "optimizer s", "task work s", "eval s", "train img/s", "test img/s", "GFLOP/s", "matmul GFLOP/s", "of matmul", "peak MiB");
            var rows = new List<string> { "method,backbone,precision,tasks,epochs,final_accuracy,wall_s,data_s,forward_s,backward_s,optimizer_s,task_work_s,evaluation_s,train_images_per_s,test_images_per_s,backbone_gflop,gflops,matmul_gflops,fraction_of_matmul,peak_resident_mib" };
            foreach (var config in runs)
            {
                AnsiConsole.MarkupLine(Markup.Escape($"{config.Method} on {config.Backbone}, {config.Precision}: {config.Tasks} tasks, {config.Epochs} epoch(s) each"));
                var weights = BackboneWeights.Resolve(config, cancellation);
                var r = EndToEndBenchmark.Run(config, weights, matmul[config.Precision], cancellation);
                var t = r.Times;
                string F(double v, string format = "F1") => v.ToString(format, CultureInfo.InvariantCulture);
                table.AddRow(r.Method, r.Backbone, r.Precision, F(r.FinalAverageAccuracy, "F2"), F(r.WallSeconds), F(t.Data), F(t.Forward),
                    F(t.Backward), F(t.Optimizer), F(t.TaskWork), F(t.Evaluation), F(r.TrainImagesPerSecond, "F0"), F(r.TestImagesPerSecond, "F0"),
                    F(r.AchievedGflops), F(r.MatmulGflops), r.FractionOfMatmul.ToString("P0", CultureInfo.InvariantCulture), F(r.PeakResidentBytes / 1048576.0, "F0"));
                rows.Add(string.Join(',', r.Method, r.Backbone, r.Precision, r.Tasks, r.Epochs, F(r.FinalAverageAccuracy, "F2"), F(r.WallSeconds, "F2"),
                    F(t.Data, "F2"), F(t.Forward, "F2"), F(t.Backward, "F2"), F(t.Optimizer, "F2"), F(t.TaskWork, "F2"), F(t.Evaluation, "F2"),
                    F(r.TrainImagesPerSecond), F(r.TestImagesPerSecond), F(r.BackboneGflop), F(r.AchievedGflops), F(r.MatmulGflops),
                    F(r.FractionOfMatmul, "F3"), F(r.PeakResidentBytes / 1048576.0, "F0")));
                if (parse.GetValue(csv) is { } file) File.WriteAllLines(file.FullName, rows);
            }
            AnsiConsole.Write(table);
            BenchCommand.WriteMklKernels();
            return Task.FromResult(0);
        });
        return command;
    }
}
