using ContinualMoE.Backbones.Language;
using ContinualMoE.Data.Text;
using ContinualMoE.Experiments;
using ContinualMoE.Tests.Checkpoints;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary>The default language model: Debian's fortunes corpus, the hand-written BPE trainer applied by
/// Microsoft.ML.Tokenizers, deterministic pretraining, the Hugging Face folder, and the cache (reuse and damage).
/// A tiny recipe on a slice of the corpus keeps each test to a few seconds.</summary>
public class DefaultLanguageModelTests
{
    private static readonly LanguageModelRecipe Tiny = new()
    {
        Name = "gpt2-tiny-test", Merges = 60, Width = 16, Depth = 1, Heads = 2, Context = 16, BatchSize = 4, MaxBatchesPerEpoch = 6,
        LearningRate = 1e-2, FinalLearningRate = 1e-3, Seed = 3,
    };

    private static TextCorpus Fortunes()
    {
        Assert.True(Directory.Exists(FortuneCorpus.DefaultFolder),
            $"{FortuneCorpus.DefaultFolder} not found: apt-get install {FortuneCorpus.DebianPackage} (scripts/cmoe test installs it)");
        return FortuneCorpus.Load();
    }

    /// <summary>A few hundred fortunes: enough for merges and a handful of batches.</summary>
    private static TextCorpus Slice() => Fortunes() is var all ? new TextCorpus("fortunes slice", all.Train.Take(150).ToList(), all.HeldOut.Take(20).ToList()) : null!;

    [Fact]
    public void CorpusIsTheFortunesPackageWithAFixedHeldOutPart()
    {
        var corpus = Fortunes();
        Assert.True(corpus.Train.Count > 10_000, $"only {corpus.Train.Count} training fortunes");
        Assert.Equal(corpus.Train.Count / (FortuneCorpus.HeldOutEvery - 1), corpus.HeldOut.Count, tolerance: 1);
        Assert.Empty(corpus.Train.Intersect(corpus.HeldOut.Where(d => d.Length > 200)));
        Assert.DoesNotContain(corpus.Train, d => d.Contains("\n%\n") || d.Contains('\b'));
        Assert.Equal(["one", "two\nlines"], FortuneCorpus.Split("one\n%\n\n%\ntwo\nlines\n%\n"));
    }

    [Fact]
    public void LearnedTokenizerRoundTripsCorpusTextAndCompressesIt()
    {
        var corpus = Slice();
        using var folder = new TempDirectory();
        var bpe = ByteLevelBpeTrainer.Train(corpus.Train, merges: 200);
        Assert.Equal(256 + 200 + 1, bpe.Size);
        Assert.Equal(bpe.Size - 1, bpe.EndOfTextId);
        bpe.WriteGpt2Files(folder.Path);
        var tokenizer = LanguageModelTokenizer.Load(folder.Path);
        Assert.Equal("vocab.json + merges.txt (byte-level BPE)", tokenizer.Kind);
        long bytes = 0, tokens = 0;
        foreach (var text in corpus.HeldOut.Append("naïve café — “quotes” 日本語 \t tabs"))
        {
            var ids = tokenizer.Encode(text);
            Assert.Equal(text, tokenizer.Decode(ids));
            bytes += System.Text.Encoding.UTF8.GetByteCount(text);
            tokens += ids.Count;
        }
        Assert.True(tokens < 0.75 * bytes, $"{tokens} tokens for {bytes} bytes: the merges do not compress held-out text");
        // The most frequent English pair is merged first and applied by the library as learned.
        Assert.Equal([bpe.Vocabulary["Ġthe"]], tokenizer.Encode(" the"));
    }

    [Fact]
    public void TrainerIsDeterministic()
    {
        var corpus = Slice();
        var a = ByteLevelBpeTrainer.Train(corpus.Train, 80);
        var b = ByteLevelBpeTrainer.Train(corpus.Train, 80);
        Assert.Equal(a.Merges, b.Merges);
        Assert.Equal(a.Vocabulary.OrderBy(p => p.Value), b.Vocabulary.OrderBy(p => p.Value));
    }

    [Fact]
    public void PretrainingIsDeterministicAndTheSavedFolderLoadsToTheSameLogits()
    {
        var corpus = Slice();
        using var first = new TempDirectory();
        using var second = new TempDirectory();
        var report = LanguageModelPretraining.Build(Tiny, corpus, Path.Combine(first.Path, "m"));
        LanguageModelPretraining.Build(Tiny, corpus, Path.Combine(second.Path, "m"));
        foreach (var file in LanguageModelPretraining.ModelFiles)
            Assert.Equal(File.ReadAllBytes(Path.Combine(first.Path, "m", file)), File.ReadAllBytes(Path.Combine(second.Path, "m", file)));
        Assert.Equal(Tiny.MaxBatchesPerEpoch, (int)report.Steps);
        Assert.True(report.HeldOutPerplexity < report.VocabularySize,
            $"held-out perplexity {report.HeldOutPerplexity:F1} is no better than uniform over {report.VocabularySize} tokens");

        var folder = Path.Combine(first.Path, "m");
        var tokenizer = LanguageModelTokenizer.Load(folder);
        var tokens = LanguageModelPretraining.Encode(tokenizer, corpus.Train, tokenizer.EosId!.Value);
        var (trained, _, _, _) = LanguageModelPretraining.Train(DecoderConfig.Read(Path.Combine(folder, "config.json")), tokens, Tiny);
        using (trained)
        using (var loaded = LanguageModelFolder.Load(folder).Model)
        {
            Assert.Equal("gpt2", loaded.Config.ModelType);
            Assert.Equal(Tiny.Context, loaded.Config.MaxPositions);
            using var ids = tensor(tokens.Take(2 * Tiny.Context).ToArray(), dtype: ScalarType.Int64).reshape(2, Tiny.Context);
            using var expected = trained.forward(ids);
            using var actual = loaded.forward(ids);
            Assert.Equal(0f, LmFixtures.MaxDifference(expected, actual));
            // The loss the report gives is the loaded model's.
            Assert.Equal(report.HeldOutLoss,
                LanguageModelPretraining.MeanTokenLoss(loaded, LanguageModelPretraining.Encode(tokenizer, corpus.HeldOut, tokenizer.EosId.Value), Tiny.Context, Tiny.BatchSize), 6);
        }
    }

    [Fact]
    public void CacheIsReusedAndADamagedFileIsRebuiltToTheSameModel()
    {
        var corpus = Slice();
        using var cache = new TempDirectory();
        var folder = Path.Combine(cache.Path, Tiny.Name);
        var builds = 0;
        TextCorpus Count() { builds++; return corpus; }

        Assert.Equal(folder, DefaultLanguageModel.EnsureFolder(Tiny, folder, Count));
        Assert.Equal(1, builds);
        Assert.Null(DefaultLanguageModel.FindDamage(folder));
        Assert.Empty(Directory.GetDirectories(cache.Path).Where(d => Path.GetFileName(d).StartsWith('.')));   // no temporary left
        var weights = Path.Combine(folder, "model.safetensors");
        var original = File.ReadAllBytes(weights);
        var written = File.GetLastWriteTimeUtc(weights);

        Assert.Equal(folder, DefaultLanguageModel.EnsureFolder(Tiny, folder, Count));
        Assert.Equal(1, builds);
        Assert.Equal(written, File.GetLastWriteTimeUtc(weights));

        var damaged = original.ToArray();
        damaged[^3] ^= 0x5A;
        File.WriteAllBytes(weights, damaged);
        var damage = DefaultLanguageModel.FindDamage(folder);
        Assert.NotNull(damage);
        Assert.Contains("model.safetensors", damage);
        Assert.DoesNotContain('\n', damage);
        var messages = new List<LanguageModelBuildProgress>();
        DefaultLanguageModel.EnsureFolder(Tiny, folder, Count, new SynchronousProgress(messages));
        Assert.Equal(2, builds);
        Assert.Contains(messages, m => m.Stage == "cache" && m.Message.Contains("model.safetensors"));
        Assert.Equal(original, File.ReadAllBytes(weights));

        File.Delete(Path.Combine(folder, "merges.txt"));
        DefaultLanguageModel.EnsureFolder(Tiny, folder, Count);
        Assert.Equal(3, builds);
        Assert.Null(DefaultLanguageModel.FindDamage(folder));
    }

    [Fact]
    public void DefaultRecipeLivesInTheCacheUnderAVersionedName()
    {
        Assert.StartsWith(CacheDirectory.Root, DefaultLanguageModel.CachePath);
        Assert.Matches(@"-v\d+$", DefaultLanguageModel.Recipe.Name);
    }

    private sealed class SynchronousProgress(List<LanguageModelBuildProgress> messages) : IProgress<LanguageModelBuildProgress>
    {
        public void Report(LanguageModelBuildProgress value) => messages.Add(value);
    }
}
