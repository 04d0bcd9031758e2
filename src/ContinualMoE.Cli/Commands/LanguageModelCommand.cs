using System.CommandLine;
using ContinualMoE.Backbones.Language;
using ContinualMoE.Experiments;
using Spectre.Console;
using static TorchSharp.torch;

namespace ContinualMoE.Cli.Commands;

/// <summary><c>continual-moe lm generate|score</c>: runs a Hugging Face decoder model folder (GPT-2, LLaMA, Mistral, Qwen2).</summary>
internal static class LanguageModelCommand
{
    public static Command Create()
    {
        var command = new Command("lm", "run a decoder language model from a Hugging Face folder (config.json, safetensors, tokenizer files)");
        command.Subcommands.Add(Generate());
        command.Subcommands.Add(Score());
        command.Subcommands.Add(Pretrain());
        return command;
    }

    /// <summary>The default language model's folder, pretrained here (with progress lines) when it is not cached yet;
    /// <c>lm pretrain</c> and text runs without --backbone share it.</summary>
    public static string EnsureDefaultModel(CancellationToken cancellation)
    {
        if (!Directory.Exists(DefaultLanguageModel.CachePath))
            AnsiConsole.MarkupLine($"Pretraining the default language model ({Markup.Escape(DefaultLanguageModel.Recipe.Name)}) into [bold]{Markup.Escape(DefaultLanguageModel.CachePath)}[/].");
        var lastStage = "";
        return DefaultLanguageModel.EnsureFolder(new Progress<LanguageModelBuildProgress>(p =>
        {
            if (p.Stage == "training")
            {
                if (p.Step % 25 == 0 || p.Step == p.Steps)
                    AnsiConsole.MarkupLine(Markup.Escape($"  step {p.Step}/{p.Steps}: loss {p.Loss:F3}, {p.TokensPerSecond:F0} tokens/s"));
            }
            else if (p.Stage != lastStage || p.Stage == "cache") AnsiConsole.MarkupLine(Markup.Escape($"  {p.Message}"));
            lastStage = p.Stage;
        }), cancellation);
    }

    /// <summary>Builds (first time, or with --force) and shows the embedded default language model.</summary>
    private static Command Pretrain()
    {
        var force = new Option<bool>("--force") { Description = "rebuild even when the cached model is intact" };
        var samples = new Option<string[]>("--sample-prompt") { Description = "prompts to continue after building", AllowMultipleArgumentsPerToken = true,
            DefaultValueFactory = _ => ["The meaning of life is", "A computer", "Love is"] };
        var command = new Command("pretrain", "build (on first use) and show the default small GPT-2, pretrained here on Debian's fortunes corpus")
        {
            force, samples,
        };
        command.SetAction((parse, cancellation) =>
        {
            ComputeDevice.ConfigureThreads();
            if (parse.GetValue(force) && Directory.Exists(DefaultLanguageModel.CachePath)) Directory.Delete(DefaultLanguageModel.CachePath, recursive: true);
            var folder = EnsureDefaultModel(cancellation);
            var report = DefaultLanguageModel.ReadReport(folder)!;
            var table = new Table().AddColumns("model", "corpus", "vocabulary", "parameters", "train tokens", "held-out tokens", "steps",
                "train loss", "held-out perplexity", "build s", "train tokens/s");
            table.AddRow(Markup.Escape(report.Recipe), Markup.Escape(report.Corpus), report.VocabularySize.ToString(), report.Parameters.ToString("N0"),
                report.TrainTokens.ToString("N0"), report.HeldOutTokens.ToString("N0"), report.Steps.ToString(), $"{report.FinalTrainLoss:F3}",
                $"{report.HeldOutPerplexity:F2}", $"{report.Seconds:F0}", $"{report.TrainTokensPerSecond:F0}");
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"Folder: [bold]{Markup.Escape(folder)}[/] (use it with --model)");
            var tokenizer = LanguageModelTokenizer.Load(folder);
            using var model = LanguageModelFolder.Load(folder).Model;
            var endOfText = (long)tokenizer.EosId!.Value;
            foreach (var prompt in parse.GetValue(samples)!)
            {
                var ids = tokenizer.Encode(prompt).Select(i => (long)i).ToList();
                foreach (var (label, settings) in new[]
                         {
                             ("greedy", new GenerationSettings { MaxNewTokens = 40 }),
                             ("sampled (T 0.8, top-k 40, seed 1)", new GenerationSettings { MaxNewTokens = 40, Temperature = 0.8, TopK = 40, Seed = 1 }),
                         })
                {
                    var generated = TextGenerator.Generate(model, ids, settings with { StopTokenIds = [endOfText] });
                    var text = tokenizer.Decode(ids.Concat(generated).Where(i => i != endOfText).Select(i => (int)i));
                    AnsiConsole.MarkupLine($"[grey]{Markup.Escape(label)}:[/] {Markup.Escape(text.ReplaceLineEndings(" / "))}");
                }
            }
            return Task.FromResult(0);
        });
        return command;
    }

    private sealed record CommonOptions(Option<string> Model, Option<string> Prompt, Option<string> DType, Option<string?> Tokenizer, Option<bool> MemoryMap);

    private static CommonOptions Common() => new(
        new Option<string>("--model", "-m") { Description = "Hugging Face model folder", Required = true },
        new Option<string>("--prompt", "-p") { Description = "prompt text", Required = true },
        new Option<string>("--dtype") { Description = "float32, bfloat16 or float16", DefaultValueFactory = _ => "float32" },
        new Option<string?>("--tokenizer") { Description = "tokenizer folder (default: the model folder)" },
        new Option<bool>("--memory-map") { Description = "map weights stored in the computing dtype from the files (copy-on-write) instead of reading them" });

    private static Command Generate()
    {
        var common = Common();
        var maxNewTokens = new Option<int>("--max-new-tokens") { DefaultValueFactory = _ => 32 };
        var temperature = new Option<double>("--temperature") { Description = "0: greedy decoding", DefaultValueFactory = _ => 0.0 };
        var topK = new Option<int>("--top-k") { Description = "sample among the k most likely tokens (0: all)" };
        var topP = new Option<double>("--top-p") { Description = "nucleus sampling threshold", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<long>("--seed");
        var chat = new Option<bool>("--chat") { Description = "send the prompt as a user message through the folder's chat template" };
        var system = new Option<string?>("--system") { Description = "system message for --chat" };
        var command = new Command("generate", "continue a prompt (greedy, or sampling with --temperature)")
        {
            common.Model, common.Prompt, common.DType, common.Tokenizer, common.MemoryMap, maxNewTokens, temperature, topK, topP, seed, chat, system,
        };
        command.SetAction((parse, _) =>
        {
            var (model, tokenizer) = Load(parse, common);
            var text = parse.GetValue(common.Prompt)!;
            var prompt = tokenizer.Encode(text);
            if (parse.GetValue(chat))
            {
                List<ChatMessage> messages = parse.GetValue(system) is { } instructions ? [new("system", instructions)] : [];
                messages.Add(new ChatMessage("user", text));
                text = tokenizer.ApplyChatTemplate(messages);
                // Templates write their own BOS token where the model wants one.
                prompt = tokenizer.Encode(text, addBos: false);
            }
            var settings = new GenerationSettings
            {
                MaxNewTokens = parse.GetValue(maxNewTokens), Temperature = parse.GetValue(temperature), TopK = parse.GetValue(topK),
                TopP = parse.GetValue(topP), Seed = parse.GetValue(seed),
                StopTokenIds = model.Config.EosTokenIds.Select(i => (long)i).Concat(tokenizer.EosId is int e ? [e] : []).ToHashSet(),
            };
            var started = DateTime.UtcNow;
            var generated = TextGenerator.Generate(model, prompt.Select(i => (long)i).ToList(), settings);
            var seconds = (DateTime.UtcNow - started).TotalSeconds;
            // Decoding the whole sequence keeps the space SentencePiece attaches to the first new token.
            var whole = tokenizer.Decode(prompt.Concat(generated.Select(i => (int)i)));
            var promptText = tokenizer.Decode(prompt);
            var continuation = whole.StartsWith(promptText, StringComparison.Ordinal) ? whole[promptText.Length..] : tokenizer.Decode(generated.Select(i => (int)i));
            AnsiConsole.WriteLine(text + continuation);
            AnsiConsole.MarkupLine(Markup.Escape($"[{prompt.Count} prompt + {generated.Length} new tokens in {seconds:F1} s, {generated.Length / Math.Max(seconds, 1e-9):F1} tokens/s]"));
            return Task.FromResult(0);
        });
        return command;
    }

    private static Command Score()
    {
        var common = Common();
        var labels = new Option<string[]>("--labels", "-l") { Description = "label options, scored as continuations of the prompt", Required = true, AllowMultipleArgumentsPerToken = true };
        var command = new Command("score", "rank label options by their log-likelihood after the prompt")
        {
            common.Model, common.Prompt, common.DType, common.Tokenizer, common.MemoryMap, labels,
        };
        command.SetAction((parse, _) =>
        {
            var (model, tokenizer) = Load(parse, common);
            var prompt = tokenizer.Encode(parse.GetValue(common.Prompt)!).Select(i => (long)i).ToList();
            var options = parse.GetValue(labels)!;
            var optionIds = options.Select(o => (IReadOnlyList<long>)tokenizer.Encode(o, addBos: false).Select(i => (long)i).ToList()).ToList();
            var scores = LabelScorer.Score(model, prompt, optionIds);
            var table = new Table().AddColumns("label", "tokens", "log-likelihood", "per token");
            foreach (var i in Enumerable.Range(0, options.Length).OrderByDescending(i => scores[i]))
                table.AddRow(Markup.Escape(options[i]), optionIds[i].Count.ToString(), $"{scores[i]:F4}", $"{scores[i] / optionIds[i].Count:F4}");
            AnsiConsole.Write(table);
            return Task.FromResult(0);
        });
        return command;
    }

    private static (DecoderLanguageModel Model, LanguageModelTokenizer Tokenizer) Load(ParseResult parse, CommonOptions common)
    {
        ComputeDevice.ConfigureThreads();
        var dtypeName = parse.GetValue(common.DType)!;
        var dtype = dtypeName switch
        {
            "float32" or "fp32" => ScalarType.Float32,
            "bfloat16" or "bf16" => ScalarType.BFloat16,
            "float16" or "fp16" => ScalarType.Float16,
            _ => throw new ContinualMoEException($"--dtype '{dtypeName}' is not one of float32, bfloat16, float16"),
        };
        var folder = parse.GetValue(common.Model)!;
        var tokenizer = LanguageModelTokenizer.Load(parse.GetValue(common.Tokenizer) ?? folder);
        var started = DateTime.UtcNow;
        var loaded = LanguageModelFolder.Load(folder, new LanguageModelLoadOptions { DType = dtype, MemoryMap = parse.GetValue(common.MemoryMap) });
        AnsiConsole.MarkupLine(Markup.Escape($"[{loaded.Description}{(parse.GetValue(common.MemoryMap) ? ", memory-mapped" : "")}; " +
            $"loaded in {(DateTime.UtcNow - started).TotalSeconds:F1} s; tokenizer: {tokenizer.Kind}]"));
        return (loaded.Model, tokenizer);
    }
}
