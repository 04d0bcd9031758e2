using TorchSharp;
using ContinualMoE.Backbones;
using ContinualMoE.Backbones.Language;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary>Key/value cache, generation and label scoring on the tiny parity models.</summary>
public class LanguageModelCacheTests
{
    [Theory]
    [InlineData("gpt2_tiny", "gpt2")]
    [InlineData("llama_tiny", "llama")]
    [InlineData("qwen2_tiny", "qwen2")]
    public void IncrementalLogitsWithTheCacheEqualFullSequenceLogits(string folder, string key)
    {
        var model = LmFixtures.Load(folder);
        var ids = LmFixtures.Expected()[$"{key}.input_ids"];                                      // [2, 7]
        using var noGrad = no_grad();
        using var full = model.Forward(ids);
        using var cache = model.NewCache();
        var options = new LmForwardOptions { Cache = cache };
        // A 3-token chunk, then a 2-token chunk after cached positions (needs the bottom-right causal mask), then 1 by 1.
        var pieces = new List<Tensor>();
        foreach (var (start, length) in new[] { (0L, 3L), (3L, 2L), (5L, 1L), (6L, 1L) })
        {
            using var step = model.Forward(ids.narrow(1, start, length), options);
            pieces.Add(step.Logits!.alias());
        }
        Assert.Equal(7, cache.Length);
        var difference = LmFixtures.MaxDifference(full.Logits!, torch.cat(pieces, dim: 1));
        Assert.True(difference < 1e-4, $"{folder}: cached logits differ by {difference}");
    }

    [Theory]
    [InlineData("gpt2_tiny", "gpt2")]
    [InlineData("llama_tiny", "llama")]
    public void BatchedGreedyGenerationEqualsOneByOne(string folder, string key)
    {
        var model = LmFixtures.Load(folder);
        var ids = LmFixtures.Expected()[$"{key}.input_ids"].narrow(1, 0, 5);                     // [2, 5]
        using var batched = TextGenerator.GenerateGreedy(model, ids, 6);
        Assert.Equal([2L, 6L], batched.shape);
        for (var row = 0; row < 2; row++)
        {
            var prompt = ids[row].data<long>().ToArray();
            var alone = TextGenerator.Generate(model, prompt, new GenerationSettings { MaxNewTokens = 6 });
            Assert.Equal(alone, batched[row].data<long>().ToArray());
        }
    }

    [Theory]
    [InlineData("gpt2_tiny", "gpt2")]
    [InlineData("llama_tiny", "llama")]
    [InlineData("qwen2_tiny", "qwen2")]
    public void GreedyGenerationMatchesTheReference(string folder, string key)
    {
        var model = LmFixtures.Load(folder);
        var reference = LmFixtures.Expected()[$"{key}.greedy"].data<long>().ToArray();               // 4 prompt + 6 new
        var generated = TextGenerator.Generate(model, reference[..4], new GenerationSettings { MaxNewTokens = 6 });
        Assert.Equal(reference[4..], generated);
    }

    [Fact]
    public void SamplingIsReproducibleWithASeedAndRespectsTopK()
    {
        var model = LmFixtures.Load("llama_tiny");
        var prompt = new long[] { 4, 17, 30 };
        var settings = new GenerationSettings { MaxNewTokens = 8, Temperature = 1.5, Seed = 7 };
        Assert.Equal(TextGenerator.Generate(model, prompt, settings), TextGenerator.Generate(model, prompt, settings));
        var topOne = TextGenerator.Generate(model, prompt, settings with { TopK = 1 });
        Assert.Equal(TextGenerator.Generate(model, prompt, new GenerationSettings { MaxNewTokens = 8 }), topOne);
        var stopped = TextGenerator.Generate(model, prompt, new GenerationSettings { MaxNewTokens = 8, StopTokenIds = [topOne[1]] });
        Assert.Equal(topOne[..2], stopped);
    }

    [Fact]
    public void LabelScoresAreTheSummedLogProbabilitiesOfEachOption()
    {
        var model = LmFixtures.Load("gpt2_tiny");
        long[] prompt = [7, 21, 40];
        long[][] labels = [[5], [12, 33, 9], [50, 2]];
        var scores = LabelScorer.Score(model, prompt, labels);
        using var noGrad = no_grad();
        for (var i = 0; i < labels.Length; i++)
        {
            // One unpadded sequence per option, scored independently.
            var sequence = prompt.Concat(labels[i]).ToArray();
            using var output = model.Forward(tensor(sequence, dtype: ScalarType.Int64).unsqueeze(0));
            var logProbs = output.Logits![0].log_softmax(-1);
            var expected = 0.0;
            for (var j = 0; j < labels[i].Length; j++) expected += logProbs[prompt.Length + j - 1, labels[i][j]].item<float>();
            Assert.Equal(expected, scores[i], 4);
        }
    }

    [Fact]
    public void PrefixKeysAndValuesAreSeenByEveryPosition()
    {
        var model = LmFixtures.Load("llama_tiny");
        var ids = tensor(new long[] { 5, 9, 14, 3 }, dtype: ScalarType.Int64).unsqueeze(0);
        using var noGrad = no_grad();
        using var plain = model.Forward(ids);
        var prefixes = new FixedPrefix(randn(1, 4, 2, 8, generator: new TorchSharp.torch.Generator(3)));
        using var prefixed = model.Forward(ids, new LmForwardOptions { Prefixes = prefixes });
        var perPosition = (prefixed.Logits! - plain.Logits!).abs().amax([0L, 2L]);
        for (var t = 0; t < 4; t++) Assert.True(perPosition[t].item<float>() > 1e-3, $"position {t} ignored the prefix");
        // With a cache, the prefix stays visible to later chunks exactly as in one pass.
        using var cache = model.NewCache();
        using var first = model.Forward(ids.narrow(1, 0, 2), new LmForwardOptions { Prefixes = prefixes, Cache = cache });
        using var second = model.Forward(ids.narrow(1, 2, 2), new LmForwardOptions { Prefixes = prefixes, Cache = cache });
        var difference = LmFixtures.MaxDifference(prefixed.Logits!, torch.cat([first.Logits!, second.Logits!], dim: 1));
        Assert.True(difference < 1e-4, $"cached prefixed logits differ by {difference}");
    }

    private sealed class FixedPrefix(Tensor keysAndValues) : IAttentionPrefixProvider
    {
        public AttentionPrefix? ForBlock(int blockIndex, Tensor queries) => AttentionPrefix.FromKeysAndValues(keysAndValues, keysAndValues.mul(0.5));
    }
}
