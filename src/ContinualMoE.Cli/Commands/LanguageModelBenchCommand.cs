using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ContinualMoE.Backbones.Language;
using ContinualMoE.Benchmarks;
using ContinualMoE.Cli.Reporting;
using ContinualMoE.Experiments;
using Spectre.Console;
using static TorchSharp.torch;

namespace ContinualMoE.Cli.Commands;

/// <summary>
/// <c>continual-moe bench lm</c>: training and generation tokens/s of decoder language models (default: the default
/// GPT-2 and a random-weight LLaMA of its size), fp32 and bf16, LoRA on q,v and full training, and the same measurements by
/// tools/bench_lm_torch.py in Debian's PyTorch, printed side by side. Each cell runs <c>--rounds</c> rounds, ours and
/// PyTorch's back to back in each, and reports medians: this VM's speed drifts by up to half between minutes, so a
/// ratio of two measurements far apart in time (all of ours, then all of PyTorch's) could land anywhere from 0.8x to 1.4x.
/// </summary>
internal static class LanguageModelBenchCommand
{
    public static Command Create()
    {
        var model = new Option<string[]>("--model", "-m")
        {
            Description = "Hugging Face GPT-2 or LLaMA-family folders (default: the default language model, built on first use, and a random-weight LLaMA of its size)",
            AllowMultipleArgumentsPerToken = true,
        };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 8 };
        var sequence = new Option<int>("--sequence-length") { Description = "training tokens per row", DefaultValueFactory = _ => 64 };
        var prompt = new Option<int>("--prompt-tokens") { DefaultValueFactory = _ => 16 };
        var newTokens = new Option<int>("--new-tokens") { DefaultValueFactory = _ => 32 };
        var precision = new Option<string>("--precision") { Description = "fp32, bf16 or both", DefaultValueFactory = _ => "both" };
        var training = new Option<string>("--training") { Description = "lora, full or both", DefaultValueFactory = _ => "both" };
        var threads = new Option<int>("--threads") { Description = "intra-op threads for both (0: one per core)", DefaultValueFactory = _ => 0 };
        var seconds = new Option<double>("--seconds") { Description = "seconds per measurement", DefaultValueFactory = _ => 3.0 };
        var torchScript = new Option<string?>("--torch-script") { Description = "tools/bench_lm_torch.py (default: found from the working directory up)" };
        var python = new Option<string>("--python") { Description = "Python with PyTorch", DefaultValueFactory = _ => "/usr/bin/python3" };
        var noTorch = new Option<bool>("--no-torch") { Description = "measure only this implementation" };
        var roundCount = new Option<int>("--rounds")
        {
            Description = "rounds per measurement, ours and PyTorch back to back in each; figures are medians (one round says little on a shared machine)",
            DefaultValueFactory = _ => 3,
        };
        var command = new Command("lm", "training and generation tokens/s of a language model, side by side with the same model in PyTorch")
        {
            model, batch, sequence, prompt, newTokens, precision, training, threads, seconds, torchScript, python, noTorch, roundCount,
        };
        command.SetAction((parse, cancellation) =>
        {
            if (parse.GetValue(roundCount) is < 1 and var rounds) throw new ContinualMoEException($"--rounds must be at least 1, not {rounds}");
            var threadCount = parse.GetValue(threads) is > 0 and var t ? t : Environment.ProcessorCount;
            ComputeDevice.ConfigureThreads(threadCount);
            string? generated = null;
            var folders = parse.GetValue(model) is { Length: > 0 } given ? given.ToList() : [];
            if (folders.Count == 0)
            {
                var gpt2 = DefaultLanguageModel.EnsureFolder(
                    new Progress<LanguageModelBuildProgress>(p => { if (p.Stage != "training") AnsiConsole.MarkupLine(Markup.Escape($"  {p.Message}")); }), cancellation);
                generated = Path.Combine(Path.GetTempPath(), $"cmoe-bench-llama-{Environment.ProcessId}");
                using var loaded = LanguageModelFolder.Load(gpt2).Model;
                folders = [gpt2, LanguageModelBenchmark.WriteLlamaLike(loaded.Config, generated)];
            }
            try
            {
                foreach (var folder in folders) Measure(parse, folder, threadCount);
            }
            finally
            {
                if (generated is not null && Directory.Exists(generated)) Directory.Delete(generated, recursive: true);
            }
            return Task.FromResult(0);
        });
        return command;

        void Measure(ParseResult parse, string folder, int threadCount)
        {
            var dtypes = parse.GetValue(precision) switch
            {
                "fp32" => new[] { ScalarType.Float32 },
                "bf16" => [ScalarType.BFloat16],
                "both" => [ScalarType.Float32, ScalarType.BFloat16],
                var other => throw new ContinualMoEException($"unknown --precision '{other}': use fp32, bf16 or both"),
            };
            var modes = parse.GetValue(training) switch
            {
                "lora" => new[] { LanguageModelTrainingMode.LoraQv },
                "full" => [LanguageModelTrainingMode.Full],
                "both" => [LanguageModelTrainingMode.LoraQv, LanguageModelTrainingMode.Full],
                var other => throw new ContinualMoEException($"unknown --training '{other}': use lora, full or both"),
            };
            var rounds = parse.GetValue(roundCount);
            var withTorch = !parse.GetValue(noTorch);
            var script = withTorch ? parse.GetValue(torchScript) ?? FindScript() : null;
            var cells = new List<LanguageModelBenchCell>();
            LanguageModelBenchmarkResult? first = null;
            foreach (var dtype in dtypes)
                foreach (var mode in modes)
                {
                    List<double> oursTrain = [], oursGenerate = [], theirsTrain = [], theirsGenerate = [];
                    string? precisionName = null, trainingName = null;
                    for (var round = 0; round < rounds; round++)
                    {
                        // Back to back, the first side alternating by round, so that a machine drifting one way moves both.
                        var oursFirst = round % 2 == 0;
                        if (withTorch && !oursFirst) MeasureTorch();
                        var result = LanguageModelBenchmark.Run(folder, dtype, mode, parse.GetValue(batch), parse.GetValue(sequence), parse.GetValue(prompt),
                            parse.GetValue(newTokens), parse.GetValue(seconds), threadCount);
                        first ??= result;
                        (precisionName, trainingName) = (result.Precision, result.Training);
                        oursTrain.Add(result.TrainTokensPerSecond);
                        oursGenerate.Add(result.GenerateTokensPerSecond);
                        if (withTorch && oursFirst) MeasureTorch();
                    }
                    cells.Add(new LanguageModelBenchCell(precisionName!, trainingName!, oursTrain, oursGenerate, theirsTrain, theirsGenerate));

                    void MeasureTorch()
                    {
                        var arguments = new List<string>
                        {
                            script!, "--model", folder, "--batch-size", parse.GetValue(batch).ToString(), "--sequence-length", parse.GetValue(sequence).ToString(),
                            "--prompt-tokens", parse.GetValue(prompt).ToString(), "--new-tokens", parse.GetValue(newTokens).ToString(),
                            "--precision", dtype == ScalarType.BFloat16 ? "bf16" : "fp32", "--training", mode == LanguageModelTrainingMode.Full ? "full" : "lora",
                            "--threads", threadCount.ToString(), "--seconds", parse.GetValue(seconds).ToString(CultureInfo.InvariantCulture),
                        };
                        var line = RunPython(parse.GetValue(python)!, arguments).Single();
                        using var json = JsonDocument.Parse(line);
                        theirsTrain.Add(json.RootElement.GetProperty("train_tokens_per_s").GetDouble());
                        theirsGenerate.Add(json.RootElement.GetProperty("generate_tokens_per_s").GetDouble());
                    }
                }

            AnsiConsole.MarkupLine(Markup.Escape($"{first!.Model}: batch {first.BatchSize}, training on {first.SequenceLength} tokens per row, " +
                $"generation {parse.GetValue(prompt)} prompt + {first.NewTokens} new tokens per row (greedy, KV cache), {first.Threads} threads; tokens/s" +
                (rounds > 1 ? $", medians over {rounds} rounds (each round measures both sides back to back; the ratio's range is over rounds)" : "")));
            var table = new Table().AddColumns("precision", "training", "train (ours)", "train (PyTorch)", "ours / PyTorch",
                "generate (ours)", "generate (PyTorch)", "ours / PyTorch");
            foreach (var cell in cells)
                table.AddRow(cell.Precision, cell.Training, Figure(cell.OursTrainSpread), Figure(cell.TheirsTrainSpread), Ratio(cell.TrainRatio),
                    Figure(cell.OursGenerateSpread), Figure(cell.TheirsGenerateSpread), Ratio(cell.GenerateRatio));
            AnsiConsole.Write(table);
            BenchCommand.WriteMklKernels();
        }

        static string Figure(Spread? spread) => spread is { } s ? s.Median.ToString("F0", CultureInfo.InvariantCulture) : "-";
        static string Ratio(Spread? spread) => spread switch
        {
            null => "-",
            { Count: 1 } s => $"{s.Median:F2}x",
            { } s => $"{s.Median:F2}x ({s.Min:F2}-{s.Max:F2})",
        };
    }

    /// <summary>
    /// The PyTorch side's environment, so that it runs as well as this machine allows and the comparison is of compute:
    /// <list type="bullet">
    /// <item>this process's glibc heap settings (<see cref="NativeHeap.GlibcTunables"/>): without them PyTorch 1.13 returns
    /// its freed memory to the system every step (bf16 full-model training of the default GPT-2 alone: 12-14K tokens/s,
    /// 20-22K with them);</item>
    /// <item>one OpenBLAS thread (OPENBLAS_NUM_THREADS=1) unless the user set it: Debian's python3-torch does its float32
    /// matrix products in OpenBLAS, whose pthreads variant starts its own threads beside PyTorch's OpenMP threads, and on
    /// two cores the two pools fight (float32 LoRA training 4,500-7,800 tokens/s, 16,000 with one OpenBLAS thread).</item>
    /// </list>
    /// docs/benchmarks.md, session 10.
    /// </summary>
    internal static void ConfigurePyTorch(IDictionary<string, string?> environment)
    {
        environment.TryGetValue("GLIBC_TUNABLES", out var tunables);
        environment["GLIBC_TUNABLES"] = NativeHeap.GlibcTunables(tunables);
        if (!environment.TryGetValue("OPENBLAS_NUM_THREADS", out var blasThreads) || string.IsNullOrEmpty(blasThreads))
            environment["OPENBLAS_NUM_THREADS"] = "1";
    }

    private static string FindScript()
    {
        for (var directory = new DirectoryInfo(Directory.GetCurrentDirectory()); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "tools", "bench_lm_torch.py");
            if (File.Exists(candidate)) return candidate;
        }
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "tools", "bench_lm_torch.py");
            if (File.Exists(candidate)) return candidate;
        }
        throw new ContinualMoEException("tools/bench_lm_torch.py not found from the working directory; pass --torch-script or --no-torch");
    }

    /// <summary>The script's JSON lines (one per measurement); a failure is one line with the script's last error line.</summary>
    private static List<string> RunPython(string python, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true };
        ConfigurePyTorch(start.Environment);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start) ?? throw new ContinualMoEException($"{python}: could not start");
        var errors = process.StandardError.ReadToEndAsync();
        var lines = new List<string>();
        while (process.StandardOutput.ReadLine() is { } line)
            if (line.StartsWith('{')) lines.Add(line);
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            var last = errors.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? $"exit code {process.ExitCode}";
            throw new ContinualMoEException($"{python} tools/bench_lm_torch.py failed: {last}");
        }
        return lines;
    }
}
