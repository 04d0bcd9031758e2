using System.CommandLine;
using ContinualMoE.Backbones;
using ContinualMoE.Benchmarks;
using Spectre.Console;

namespace ContinualMoE.Cli.Commands;

/// <summary><c>continual-moe bench backbone</c>: throughput of a ViT config against this machine's matmul speed;
/// <c>bench loader</c>: images/s of the image loader on a folder of image files.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config") { Description = "backbone config name", DefaultValueFactory = _ => "vit_micro_patch4_32" };
        var batch = new Option<int>("--batch-size") { Description = "images per batch", DefaultValueFactory = _ => 64 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var threads = new Option<int>("--threads") { Description = "intra-op threads (0: libtorch default, one per core)", DefaultValueFactory = _ => 0 };
        var precision = new Option<string>("--precision") { Description = "fp32, bf16 or both", DefaultValueFactory = _ => "both" };
        var seconds = new Option<double>("--seconds") { Description = "seconds per measurement", DefaultValueFactory = _ => 3.0 };
        var attention = new Option<string>("--attention")
        {
            Description = "fused (libtorch's kernel where the prefix and the precision allow it, as runs do: fp32 only on the CPU), explicit (materialised softmax) or both",
            DefaultValueFactory = _ => "fused",
        };

        var backbone = new Command("backbone", "forward and forward+backward images/s, GFLOP/s and the ratio to measured matmul GFLOP/s")
        {
            config, batch, device, threads, precision, seconds, attention,
        };
        backbone.SetAction(parse =>
        {
            var vit = VitRegistry.Get(parse.GetValue(config)!);
            ComputeDevice.ConfigureThreads(parse.GetValue(threads) is > 0 and var count ? count : null);
            var dev = ComputeDevice.Parse(parse.GetValue(device)!);
            var modes = parse.GetValue(precision) switch
            {
                "fp32" => new[] { false },
                "bf16" => [true],
                "both" => [false, true],
                var other => throw new ContinualMoEException($"unknown precision '{other}': use fp32, bf16 or both"),
            };
            var kernels = parse.GetValue(attention) switch
            {
                "fused" => new[] { AttentionKernel.Auto },
                "explicit" => [AttentionKernel.Explicit],
                "both" => [AttentionKernel.Auto, AttentionKernel.Explicit],
                var other => throw new ContinualMoEException($"unknown attention '{other}': use fused, explicit or both"),
            };
            var table = new Table().AddColumns("config", "batch", "threads", "precision", "attention", "fwd img/s", "fwd+bwd img/s",
                "GFLOP/img", "fwd GFLOP/s", "train GFLOP/s", "fp32 matmul GFLOP/s", "fwd / fp32 matmul");
            foreach (var bf16 in modes)
            foreach (var kernel in kernels)
            {
                var r = BackboneBenchmark.Run(vit, parse.GetValue(batch), dev, bf16, parse.GetValue(seconds), parse.GetValue(threads), kernel);
                table.AddRow(r.Config, r.BatchSize.ToString(), r.Threads.ToString(), r.Precision,
                    r.Attention == AttentionKernel.Auto ? "fused" : "explicit", $"{r.ForwardImagesPerSecond:F1}",
                    $"{r.ForwardBackwardImagesPerSecond:F1}", $"{r.ForwardGflopsPerImage:F3}", $"{r.ForwardAchievedGflops:F1}",
                    $"{r.TrainAchievedGflops:F1}", $"{r.MatmulGflops:F1}", $"{r.ForwardFractionOfMatmul:P0}");
            }
            AnsiConsole.Write(table);
            WriteMklKernels();
            return 0;
        });
        var bench = new Command("bench", "speed measurements");
        bench.Subcommands.Add(backbone);
        bench.Subcommands.Add(CreateLoader());
        bench.Subcommands.Add(LanguageModelBenchCommand.Create());
        bench.Subcommands.Add(EndToEndBenchCommand.Create());
        return bench;
    }

    /// <summary>Under each speed table and after pretraining: which kernels MKL runs the fp32 matrix products on
    /// (<see cref="MklCpuDispatch"/>), since that alone moves fp32 speed by a third on AMD CPUs, and their last bits.</summary>
    internal static void WriteMklKernels() =>
        AnsiConsole.MarkupLine(Markup.Escape($"MKL (fp32 matrix products): {MklCpuDispatch.Configure().Description}"));

    private static Command CreateLoader()
    {
        var folder = new Option<string>("--folder") { Description = "image folder (one subfolder per class)", Required = true };
        var size = new Option<int>("--image-size") { Description = "model input size", DefaultValueFactory = _ => 224 };
        var augment = new Option<bool>("--augment") { Description = "training pipeline (random resized crop, flip) instead of the evaluation resize" };
        var resampler = new Option<string>("--resampler") { Description = "torch or pil (input.resampler)", DefaultValueFactory = _ => "torch" };
        var interpolation = new Option<string>("--interpolation") { Description = "bilinear or bicubic", DefaultValueFactory = _ => "bilinear" };
        var workers = new Option<int>("--workers") { Description = "loader threads (0: one per core)", DefaultValueFactory = _ => 0 };
        var seconds = new Option<double>("--seconds") { Description = "seconds per measurement", DefaultValueFactory = _ => 3.0 };
        var loader = new Command("loader", "images/s of decoding, of the transforms and of the data loader on an image folder")
        {
            folder, size, augment, resampler, interpolation, workers, seconds,
        };
        loader.SetAction(parse =>
        {
            var settings = new Data.Transforms.ImageSettings
            {
                Resampler = parse.GetValue(resampler)!, TrainInterpolation = parse.GetValue(interpolation)!, TestInterpolation = parse.GetValue(interpolation)!,
            };
            settings.Validate();
            var r = LoaderBenchmark.Run(parse.GetValue(folder)!, parse.GetValue(size), parse.GetValue(augment), settings,
                parse.GetValue(workers), parse.GetValue(seconds));
            var table = new Table().AddColumns("images", "size", "pipeline", "resampler", "workers", "decode img/s (1 thread)",
                "transforms img/s (1 thread)", "loader img/s");
            table.AddRow(r.Images.ToString(), r.ImageSize.ToString(), r.Augment ? "train (augmented)" : "evaluation", r.Resampler,
                r.Workers.ToString(), $"{r.DecodeImagesPerSecond:F1}", $"{r.TransformImagesPerSecond:F1}", $"{r.LoaderImagesPerSecond:F1}");
            AnsiConsole.Write(table);
            return 0;
        });
        return loader;
    }
}
