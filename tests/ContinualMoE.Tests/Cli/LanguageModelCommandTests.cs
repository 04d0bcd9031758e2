using System.Text.Json.Nodes;
using ContinualMoE.Backbones.Language;
using ContinualMoE.Checkpoints;
using ContinualMoE.Cli.Commands;
using ContinualMoE.Tests.Backbones.Language;
using ContinualMoE.Tests.Checkpoints;

namespace ContinualMoE.Tests.Cli;

/// <summary><c>continual-moe lm generate|score</c> on a random LLaMA saved in the Hugging Face layout beside a SentencePiece tokenizer.</summary>
public class LanguageModelCommandTests
{
    private static TempDirectory ModelWithTokenizer()
    {
        var folder = new TempDirectory();
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(LmFixtures.Folder("llama_tiny"), "config.json")))!.AsObject();
        config["vocab_size"] = 320;
        File.WriteAllText(folder.File("config.json"), config.ToJsonString());
        // Our parameter names are Hugging Face's: saving the state dict gives a loadable model.safetensors.
        using var model = new LlamaLanguageModel(DecoderConfig.Read(folder.File("config.json")));
        StateDictLoader.Save(model, folder.File("model.safetensors"));
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", "sentencepiece", "tokenizer.model"), folder.File("tokenizer.model"));
        return folder;
    }

    [Fact]
    public void GeneratesAndScoresFromAModelFolder()
    {
        using var folder = ModelWithTokenizer();
        var generate = LanguageModelCommand.Create().Parse(["generate", "--model", folder.Path, "--prompt", "the quick brown", "--max-new-tokens", "4"]).Invoke();
        Assert.Equal(0, generate);
        var sample = LanguageModelCommand.Create().Parse(["generate", "-m", folder.Path, "-p", "hello", "--temperature", "0.8", "--top-p", "0.9", "--dtype", "bfloat16", "--max-new-tokens", "3"]).Invoke();
        Assert.Equal(0, sample);
        var score = LanguageModelCommand.Create().Parse(["score", "-m", folder.Path, "-p", "the dog is", "--labels", "lazy", "quick brown"]).Invoke();
        Assert.Equal(0, score);
    }

    [Fact]
    public void GeneratesThroughTheChatTemplateOfAByteLevelTokenizer()
    {
        using var folder = new TempDirectory();
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(LmFixtures.Folder("gpt2_tiny"), "config.json")))!.AsObject();
        config["vocab_size"] = 320;
        config["n_positions"] = 128;
        File.WriteAllText(folder.File("config.json"), config.ToJsonString());
        using var model = new Gpt2LanguageModel(DecoderConfig.Read(folder.File("config.json")));
        StateDictLoader.Save(model, folder.File("model.safetensors"));
        var tokenizer = Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", "qwen_tokenizer_json");
        foreach (var file in Directory.GetFiles(tokenizer)) File.Copy(file, folder.File(Path.GetFileName(file)));
        var code = LanguageModelCommand.Create().Parse(["generate", "-m", folder.Path, "-p", "hello", "--chat", "--system", "be brief", "--max-new-tokens", "3"]).Invoke();
        Assert.Equal(0, code);
    }

    [Fact]
    public void BadInputFailsWithANonZeroExitCode()
    {
        using var folder = ModelWithTokenizer();
        Assert.NotEqual(0, LanguageModelCommand.Create().Parse(["generate", "-m", folder.Path, "-p", "x", "--dtype", "int8"]).Invoke());
        File.Delete(folder.File("tokenizer.model"));
        Assert.NotEqual(0, LanguageModelCommand.Create().Parse(["score", "-m", folder.Path, "-p", "x", "-l", "a"]).Invoke());
    }

    [Fact]
    public void TokenIdsOutsideTheVocabularyAreAOneLineError()
    {
        var model = LmFixtures.Load("gpt2_tiny");
        var error = Assert.Throws<ContinualMoEException>(() => model.Forward(TorchSharp.torch.tensor(new long[] { 3, 64 }).unsqueeze(0)));
        Assert.Contains("[0, 64)", error.Message);
    }
}
