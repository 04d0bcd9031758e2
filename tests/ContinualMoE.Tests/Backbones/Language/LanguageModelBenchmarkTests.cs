using ContinualMoE.Backbones.Language;
using ContinualMoE.Benchmarks;
using ContinualMoE.Tests.Checkpoints;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary><c>bench lm</c>'s LLaMA of GPT-2's size, and a benchmark pass (bf16 LoRA training and generation) on both architectures.</summary>
public class LanguageModelBenchmarkTests
{
    [Fact]
    public void TheLlamaOfGpt2SizeLoadsAndBothArchitecturesBenchmarkInBfloat16()
    {
        using var temp = new TempDirectory();
        using var gpt2 = LmFixtures.Load("gpt2_tiny");
        var folder = LanguageModelBenchmark.WriteLlamaLike(gpt2.Config, temp.File("llama"));
        using var llama = LanguageModelFolder.Load(folder).Model;
        Assert.Equal(DecoderFamily.Llama, llama.Config.Family);
        Assert.Equal((gpt2.Config.Width, gpt2.Config.Depth, gpt2.Config.Heads, gpt2.Config.VocabSize, gpt2.Config.MaxPositions),
            (llama.Config.Width, llama.Config.Depth, llama.Config.Heads, llama.Config.VocabSize, llama.Config.MaxPositions));
        Assert.Equal(gpt2.Config.Heads / 2, llama.Config.KeyValueHeads);
        foreach (var model in new[] { LmFixtures.Folder("gpt2_tiny"), folder })
        {
            var result = LanguageModelBenchmark.Run(model, ScalarType.BFloat16, LanguageModelTrainingMode.LoraQv, 2, 8, 4, 4, 0.01);
            Assert.True(result.TrainTokensPerSecond > 0 && result.GenerateTokensPerSecond > 0, model);
            Assert.Equal("bf16", result.Precision);
        }
    }
}
