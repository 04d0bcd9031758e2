using System.Text.Json.Nodes;
using ContinualMoE.Backbones;
using ContinualMoE.Backbones.Language;
using ContinualMoE.Checkpoints;
using ContinualMoE.Cli.Commands;
using ContinualMoE.Data;
using ContinualMoE.Data.Text;
using ContinualMoE.Evaluation;
using ContinualMoE.Experiments;
using ContinualMoE.Methods;
using ContinualMoE.Scenarios;
using ContinualMoE.Training;
using ContinualMoE.Tests.Backbones.Language;
using ContinualMoE.Tests.Checkpoints;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Text;

/// <summary>
/// Text task streams through the same trainer (issue 12 §2-3): the generated text benchmark, the text scenario's global
/// labels, label scoring and generation scoring into the accuracy matrix, and the LoRA methods and SETA on random tiny
/// GPT-2 (byte-level BPE) and LLaMA (SentencePiece) folders in the Hugging Face layout. Each run: 3 tasks (the third a
/// generation task), 4 training and 2 test examples per label, 1 epoch.
/// </summary>
public class TextTaskTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "cmoe-text-" + Guid.NewGuid().ToString("N"));
    private readonly TempDirectory gpt2 = ModelFolder("gpt2");

    public void Dispose()
    {
        gpt2.Dispose();
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }

    /// <summary>A random model of the tiny fixture's geometry with room for the prompts, beside a real tokenizer.</summary>
    internal static TempDirectory ModelFolder(string family)
    {
        var folder = new TempDirectory();
        var llama = family == "llama";
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(LmFixtures.Folder(llama ? "llama_tiny" : "gpt2_tiny"), "config.json")))!.AsObject();
        config["vocab_size"] = 320;
        config[llama ? "max_position_embeddings" : "n_positions"] = 512;
        File.WriteAllText(folder.File("config.json"), config.ToJsonString());
        manual_seed(5);
        using DecoderLanguageModel model = llama
            ? new LlamaLanguageModel(DecoderConfig.Read(folder.File("config.json")))
            : new Gpt2LanguageModel(DecoderConfig.Read(folder.File("config.json")));
        StateDictLoader.Save(model, folder.File("model.safetensors"));
        var tokenizer = Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", llama ? "sentencepiece" : "qwen_tokenizer_json");
        foreach (var file in Directory.GetFiles(tokenizer)) File.Copy(file, folder.File(Path.GetFileName(file)));
        return folder;
    }

    internal static RunConfig TinyTextRun(string method, string folder) => new()
    {
        Method = method,
        Dataset = GeneratedTextBenchmark.DatasetName,
        Backbone = folder,
        Tasks = 3,
        Epochs = 1,
        BatchSize = 8,
        LearningRate = 0.01,
        GeneratedTrainPerClass = 4,
        GeneratedTestPerClass = 2,
        Seed = 3,
    };

    private static GeneratedTextOptions Small => new() { Tasks = 6, TrainPerClass = 4, TestPerClass = 2 };

    [Fact]
    public void GeneratedTextBenchmarkIsDeterministicAndMixesTaskKinds()
    {
        static string Flatten(IReadOnlyList<TextTaskData> tasks) => string.Join("|", tasks.Select(t =>
            $"{t.Name}:{string.Join(",", t.Labels)}:{string.Join(";", t.Train.Concat(t.Test).Select(e => $"{e.Instruction}/{e.Input}/{e.Output}"))}"));
        var a = GeneratedTextBenchmark.Create(Small);
        Assert.Equal(Flatten(a), Flatten(GeneratedTextBenchmark.Create(Small)));
        Assert.NotEqual(Flatten(a), Flatten(GeneratedTextBenchmark.Create(Small with { Seed = 2 })));
        Assert.Equal(6, a.Count);
        Assert.Equal([false, false, true, false, false, true], a.Select(t => !t.IsClassification).ToArray());
        foreach (var task in a.Where(t => t.IsClassification))
        {
            Assert.Equal(task.Labels.Count * 4, task.Train.Count);
            Assert.All(task.Train, e => Assert.Contains(e.Output, task.Labels));
        }
        // Shared structure: labels come from one pool, so some label text recurs in a later task.
        var classification = a.Where(t => t.IsClassification).ToList();
        Assert.Contains(classification.Skip(1), t => t.Labels.Intersect(classification.Take(classification.IndexOf(t)).SelectMany(x => x.Labels)).Any());
    }

    /// <summary>The words of a generated task's sentences: per example, the five words after "Text: ".</summary>
    private static List<string[]> SentenceWords(IEnumerable<TextExample> examples) =>
        examples.Select(e => e.Input["Text: ".Length..].Split(' ')).ToList();

    /// <summary>Per task: each word that occurs with a single output (over train and test) and that output.</summary>
    private static Dictionary<string, string> DecidingWords(TextTaskData task)
    {
        var all = task.Train.Concat(task.Test).ToList();
        var words = SentenceWords(all);
        return all.SelectMany((e, n) => words[n].Select(w => (w, e.Output))).GroupBy(p => p.w)
            .Select(g => (g.Key, Outputs: g.Select(p => p.Output).Distinct().ToList()))
            .Where(p => p.Outputs.Count == 1).ToDictionary(p => p.Key, p => p.Outputs[0]);
    }

    [Fact]
    public void GeneratedTextTasksAreDecidedByThreeOfFiveWords()
    {
        // Learnable by design: in every sentence three of the five words carry the answer (a classification label's
        // keywords, or a generation task's source word) and the other two are fillers seen with several answers, on the
        // test set too. With one deciding word among four fillers most tasks never left the one-answer plateau.
        foreach (var task in GeneratedTextBenchmark.Create(Small with { TrainPerClass = 30, TestPerClass = 10 }))
        {
            var all = task.Train.Concat(task.Test).ToList();
            Assert.All(all, e => Assert.StartsWith("Text: ", e.Input));
            var words = SentenceWords(all);
            Assert.All(words, w => Assert.Equal(5, w.Length));
            var deciding = DecidingWords(task);
            for (var n = 0; n < all.Count; n++)
            {
                var keys = words[n].Where(deciding.ContainsKey).ToList();
                Assert.Equal(3, keys.Count);
                Assert.All(keys, k => Assert.Equal(all[n].Output, deciding[k]));
            }
            Assert.Equal(task.IsClassification ? 3 * task.Labels.Count : 4, deciding.Count);
            Assert.DoesNotContain(all, e => e.Output.Contains(' '));   // one word: one token of a small vocabulary
        }
    }

    [Fact]
    public void GeneratedTextStreamMeansTheSameWithoutTheTaskCue()
    {
        // The failure this guards against: words drawn afresh for every task made one word a keyword of 'life' in one
        // task, of 'law' in another and a filler in a third, so the stream contradicted itself without the task number
        // and even joint training on all tasks stayed at one answer for every input. Now a word decides at most one answer
        // over the whole stream, is never a filler where another task decides with it, and the fillers (the shared
        // structure) are the same in every task, so one mapping from words to answers fits every task at once.
        var tasks = GeneratedTextBenchmark.Create(Small with { TrainPerClass = 30, TestPerClass = 10 });
        var deciding = tasks.Select(DecidingWords).ToList();
        var fillers = tasks.Select((t, i) => SentenceWords(t.Train.Concat(t.Test)).SelectMany(w => w).Distinct()
            .Where(w => !deciding[i].ContainsKey(w)).ToHashSet()).ToList();
        Assert.All(fillers, f => Assert.Equal(fillers[0].Order(), f.Order()));
        var answerOf = new Dictionary<string, string>();
        foreach (var (word, output) in deciding.SelectMany(d => d))
        {
            Assert.DoesNotContain(word, fillers[0]);
            Assert.Equal(output, answerOf.TryAdd(word, output) ? output : answerOf[word]);
        }
        // Every decided word belongs to one task only (each task draws words no earlier task used).
        Assert.Equal(deciding.Sum(d => d.Count), answerOf.Count);
        // Labels are still shared: some label of a later task is a label of an earlier one.
        var classification = tasks.Where(t => t.IsClassification).ToList();
        Assert.Contains(classification.Skip(1), t => t.Labels.Intersect(classification.Take(classification.IndexOf(t)).SelectMany(x => x.Labels)).Any());
    }

    [Fact]
    public void LabelsAreGlobalAcrossTasksAndTargetsAreTheLabelIds()
    {
        var tokenizer = LanguageModelTokenizer.Load(gpt2.Path);
        var format = new TextPromptFormat(tokenizer);
        var tasks = GeneratedTextBenchmark.Create(Small);
        var scenario = TextScenario.Create(tasks, format);
        var labelTexts = tasks.Where(t => t.IsClassification).SelectMany(t => t.Labels).Distinct().Count();
        Assert.Equal(labelTexts + tasks.Count(t => !t.IsClassification), scenario.ClassCount);
        for (var t = 0; t < tasks.Count; t++)
        {
            var task = scenario.Tasks[t];
            var names = task.Classes.Select(c => scenario.Labels.ClassNames[c]).ToList();
            if (tasks[t].IsClassification) Assert.Equal(tasks[t].Labels.Order(), names.Order());
            else Assert.True(scenario.Labels.IsGeneration(task.Classes.Single()));
            var train = (ITextDataset)task.Train;
            for (var i = 0; i < train.Count; i++)
            {
                var example = train.GetText(i);
                Assert.Equal(tasks[t].Train[i].Output, example.Reference);
                Assert.Equal(tokenizer.EosId, example.Output[^1]);
                if (tasks[t].IsClassification) Assert.Equal(scenario.Labels.LabelIds[train.GetLabel(i)], example.Output);
                else Assert.NotNull(example.Metric);
            }
        }
        // A label text in two tasks is one class, listed in both tasks.
        var shared = Enumerable.Range(0, scenario.ClassCount).First(c => scenario.TasksOfClass(c).Count > 1);
        Assert.False(scenario.Labels.IsGeneration(shared));

        // The loader's rows are prompt then output, right-padded, with the masks saying which is which.
        using var batch = DataSource.ForText(4, 1, CPU).Loader(scenario.Tasks[0].Train, augment: false, shuffle: false).Epoch(0).First();
        var first = ((ITextDataset)scenario.Tasks[0].Train).GetText(0);
        var ids = batch.Inputs[0].data<long>().ToArray();
        var target = batch.TargetMask![0].data<bool>().ToArray();
        Assert.Equal(first.Prompt.Concat(first.Output).Select(i => (long)i), ids.Take(first.Prompt.Length + first.Output.Length));
        Assert.Equal(first.Output.Length, target.Count(x => x));
        Assert.True(target.Skip(first.Prompt.Length).Take(first.Output.Length).All(x => x));
        Assert.Equal(first.Prompt.Length + first.Output.Length, batch.AttentionMask![0].data<bool>().ToArray().Count(x => x));
    }

    [Fact]
    public void LabelScoringGivesTheLogLikelihoodOfEachSeenLabel()
    {
        using var model = LanguageModelFolder.Load(gpt2.Path).Model;
        var format = new TextPromptFormat(LanguageModelTokenizer.Load(gpt2.Path));
        var scenario = TextScenario.Create(GeneratedTextBenchmark.Create(Small), format);
        var readout = new LanguageModelReadout(model, scenario.Labels);
        var test = (ITextDataset)scenario.Tasks[1].Test;
        using var batch = DataSource.ForText(5, 1, CPU).Loader(test, augment: false, shuffle: false).Epoch(0).First();
        var seen = scenario.SeenClassMask(1);
        using var prediction = readout.Predict(batch, new NoAdapters(), new EvaluationContext(2, seen, null, null, new SampleIdentity(test, batch.Indices)));
        Assert.Null(prediction.Scores);
        var logits = prediction.Logits.data<float>().ToArray();
        for (var r = 0; r < batch.Count; r++)
            for (var c = 0; c < scenario.ClassCount; c++)
            {
                var value = logits[r * scenario.ClassCount + c];
                if (!seen[c]) { Assert.Equal(float.NegativeInfinity, value); continue; }
                var label = scenario.Labels.LabelIds[c]!.Select(i => (long)i).ToList();
                var expected = LabelScorer.Score(model, test.GetText(batch.Indices[r]).Prompt.Select(i => (long)i).ToList(), [label])[0];
                Assert.True(Math.Abs(expected - value) < 1e-3 * Math.Max(1, Math.Abs(expected)), $"row {r} class {c}: {value} vs {expected}");
            }
    }

    private sealed class NoAdapters : ILinearAdapterProvider
    {
        public Tensor? Delta(LinearSite site, Tensor input) => null;
    }

    public static TheoryData<string> TextMethods() => ["seta", "seq-lora", "ewc-lora", "o-lora", "joint-lora", "inflora", "mocl"];

    [Theory]
    [MemberData(nameof(TextMethods))]
    public void LoraMethodsRunTextTasksEndToEndWithAFrozenLanguageModel(string method)
    {
        using var experiment = Experiment.Build(TinyTextRun(method, gpt2.Path), backboneWeights: null);
        Assert.Equal(InputModality.Text, experiment.Modality);
        var before = experiment.LanguageModel!.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        var results = experiment.Trainer().Run(experiment.Learner);
        for (var t = 0; t < 3; t++)
            for (var i = 0; i <= t; i++)
                Assert.InRange(results.Accuracy[i, t], 0, 100);
        var metrics = ContinualMetrics.Compute(results.Accuracy, experiment.Scenario.Tasks.Select(t => t.Test.Count).ToList(), null);
        Assert.True(double.IsFinite(metrics.FinalAverageAccuracy));
        foreach (var (name, p) in experiment.LanguageModel.named_parameters())
        {
            Assert.False(p.requires_grad, $"{method}: {name} requires grad");
            Assert.True(p.grad is null, $"{method}: {name} has a gradient");
            Assert.True(p.equal(before[name]).all().item<bool>(), $"{method}: {name} changed");
        }
        Assert.True(experiment.Learner.Cost(3).TrainableParameters > 0);
        foreach (var t in before.Values) t.Dispose();
    }

    [Theory]
    [InlineData(1.0, 100.0)]
    [InlineData(0.0, 0.0)]
    public void GenerationTasksAreScoredByTheirMetric(double verdict, double expected)
    {
        var config = TinyTextRun("seq-lora", gpt2.Path) with { Tasks = 3 };
        var tasks = TextStreams.Load(config);
        var metrics = new Dictionary<string, TextAnswerMetric> { [tasks[2].Name] = (_, _, _) => verdict };
        using var experiment = Experiment.BuildText(config, tasks, metrics);
        var results = experiment.Trainer().Run(experiment.Learner);
        Assert.Equal(expected, results.Accuracy[2, 2]);
    }

    [Fact]
    public void GradedGenerationTaskEntryIsTheMeanScoreOverItsSamples()
    {
        var config = TinyTextRun("seq-lora", gpt2.Path) with { Tasks = 3 };
        var tasks = TextStreams.Load(config);
        // A graded metric: ROUGE-L of the answer, plus a fraction read from the source so that the mean is fractional
        // whatever the tiny model generates. Every call is recorded to recompute the mean independently.
        var calls = new List<(string Answer, string Reference, string Source, double Score)>();
        double Graded(string answer, string reference, string source)
        {
            var score = 0.5 * TextMetrics.RougeL(answer.Trim(), reference) + 0.5 * (source.Length % 4) / 3.0;
            calls.Add((answer, reference, source, score));
            return score;
        }
        var metrics = new Dictionary<string, TextAnswerMetric> { [tasks[2].Name] = Graded };
        using var experiment = Experiment.BuildText(config, tasks, metrics);
        var results = experiment.Trainer().Run(experiment.Learner);

        var test = tasks[2].Test;
        Assert.Equal(test.Count, calls.Count);     // one evaluation after the last task, one call per test sample
        Assert.Equal(test.Select(e => e.Input).Order(), calls.Select(c => c.Source).Order());
        Assert.Equal(test.Select(e => e.Output).Order(), calls.Select(c => c.Reference).Order());
        var mean = 100.0 * calls.Average(c => c.Score);
        Assert.InRange(mean, 1e-6, 100 - 1e-6);
        Assert.NotEqual(Math.Round(mean * test.Count / 100), mean * test.Count / 100);   // not a whole count
        Assert.Equal(mean, results.Accuracy[2, 2], 1e-4);
        Assert.Equal(mean * test.Count / 100, results.Accuracy.Correct(2, 2)!.Value, 1e-4);
    }

    [Fact]
    public void SetaRunsOnLlamaWithASentencePieceTokenizer()
    {
        using var llama = ModelFolder("llama");
        using var experiment = Experiment.Build(TinyTextRun("seta", llama.Path) with { Tasks = 2 }, backboneWeights: null);
        Assert.IsType<LlamaLanguageModel>(experiment.LanguageModel);
        var results = experiment.Trainer().Run(experiment.Learner);
        Assert.True(results.Accuracy.IsStepComplete(1));
        Assert.True(results.HasTaskIdentity);   // SETA's gate picked a task for every test sample
    }

    [Fact]
    public void TextRunStoppedAtATaskBoundaryResumesToTheSameResults()
    {
        var config = TinyTextRun("seta", gpt2.Path);
        var whole = Path.Combine(root, "whole");
        var resumed = Path.Combine(root, "resumed");
        Assert.Equal(0, RunSession.Start(config, whole, force: false, CancellationToken.None));
        using (var stop = new CancellationTokenSource())
            Assert.Equal(130, RunSession.Start(config, resumed, false, stop.Token, taskFinished: t => { if (t == 0) stop.Cancel(); }));
        Assert.Equal(0, RunSession.Resume(resumed, null, [], CancellationToken.None));
        Assert.Equal(File.ReadAllText(Path.Combine(whole, "accuracy_matrix.csv")), File.ReadAllText(Path.Combine(resumed, "accuracy_matrix.csv")));
        var metrics = JsonNode.Parse(File.ReadAllText(Path.Combine(whole, "metrics.json")))!;
        Assert.Equal("tokens", metrics["throughput_unit"]!.GetValue<string>());
        Assert.Equal(JsonNode.Parse(File.ReadAllText(Path.Combine(resumed, "metrics.json")))!["metrics"]!.ToJsonString(), metrics["metrics"]!.ToJsonString());
    }

    [Fact]
    public void StateRoundTripGivesIdenticalPredictions()
    {
        var config = TinyTextRun("seta", gpt2.Path) with { Tasks = 2 };
        using var trained = Experiment.Build(config, backboneWeights: null);
        trained.Trainer().Run(trained.Learner);
        var file = Path.Combine(Directory.CreateDirectory(root).FullName, "state.safetensors");
        SafeTensorsFile.Write(file, trained.Learner.State(), new Dictionary<string, string>());
        using var restored = Experiment.Build(config, backboneWeights: null);
        var state = SafeTensorsFile.Read(file, out _);
        restored.Learner.LoadState(state);
        var test = (ITextDataset)trained.Scenario.Tasks[1].Test;
        var context = new EvaluationContext(2, trained.Scenario.SeenClassMask(1), null, null);
        using var batch = trained.Data.Loader(test, augment: false, shuffle: false).Epoch(0).First();
        using var before = trained.Learner.Predict(batch, context with { Samples = new SampleIdentity(test, batch.Indices) });
        using var after = restored.Learner.Predict(batch, context with { Samples = new SampleIdentity(test, batch.Indices) });
        Assert.True(before.Logits.allclose(after.Logits, rtol: 1e-5, atol: 1e-5));
        foreach (var t in state.Values) t.Dispose();
    }

    [Theory]
    [InlineData("l2p")]
    [InlineData("smope")]
    [InlineData("ncm")]
    public void ImageOnlyMethodsAreRefusedOnTextWithOneLine(string method)
    {
        Assert.False(MethodRegistry.Modalities(method).HasFlag(InputModality.Text));
        var error = Assert.Throws<ContinualMoEException>(() => Experiment.Build(TinyTextRun(method, gpt2.Path), backboneWeights: null));
        Assert.DoesNotContain('\n', error.Message);
        Assert.Contains($"method '{method}' does not run on text tasks", error.Message);
        Assert.Contains("seta", error.Message);
        Assert.Throws<ContinualMoEException>(() => RunSession.Validate(TinyTextRun(method, gpt2.Path)));
    }

    [Fact]
    public void TextRunOnAMissingModelFolderFailsInOneLineAndNoFolderMeansTheDefaultModel()
    {
        var missing = Path.Combine(Path.GetTempPath(), "no-such-model-" + Guid.NewGuid().ToString("N"));
        var error = Assert.Throws<ContinualMoEException>(() => RunSession.Validate(TinyTextRun("seta", missing)));
        Assert.Contains(missing, error.Message);
        Assert.DoesNotContain('\n', error.Message);
        var byDefault = TinyTextRun("seta", RunConfig.DefaultBackbone);
        Assert.True(TextStreams.UsesDefaultLanguageModel(byDefault));
        RunSession.Validate(byDefault); // names the default model; validation builds nothing
    }
}
