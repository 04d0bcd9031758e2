using System.Text.Json.Nodes;
using ContinualMoE.Backbones.Language;
using ContinualMoE.Tests.Checkpoints;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary>The bad-input cases for model folders that LanguageModelFolderTests does not reach: every message is
/// one line that starts with the file at fault.</summary>
public class LanguageModelFolderErrorTests
{
    private static TempDirectory CopyOf(string model)
    {
        var temp = new TempDirectory();
        foreach (var file in Directory.GetFiles(LmFixtures.Folder(model)))
            File.Copy(file, temp.File(Path.GetFileName(file)));
        return temp;
    }

    private static void AssertNamesFile(string file, ContinualMoEException error, string expected)
    {
        Assert.StartsWith(file + ": ", error.Message);
        Assert.Contains(expected, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void AMissingShardIsNamedByItsPath()
    {
        using var folder = CopyOf("gpt2_tiny");
        File.Delete(folder.File("model-00001-of-00002.safetensors"));
        AssertNamesFile(folder.File("model-00001-of-00002.safetensors"),
            Assert.Throws<ContinualMoEException>(() => LanguageModelFolder.Load(folder.Path)), "missing");
    }

    [Fact]
    public void ATruncatedWeightFileIsNamed()
    {
        using var folder = CopyOf("llama_tiny");
        var weights = folder.File("model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, bytes[..(bytes.Length / 2)]);
        var error = Assert.Throws<ContinualMoEException>(() => LanguageModelFolder.Load(folder.Path));
        Assert.StartsWith(weights + ": ", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void AMalformedOrIncompleteConfigIsNamed()
    {
        using var folder = CopyOf("llama_tiny");
        var config = folder.File("config.json");
        var original = File.ReadAllText(config);
        File.WriteAllText(config, original[..(original.Length / 2)]);
        AssertNamesFile(config, Assert.Throws<ContinualMoEException>(() => LanguageModelFolder.Load(folder.Path)), "not valid JSON");

        var node = JsonNode.Parse(original)!.AsObject();
        node.Remove("num_hidden_layers");
        File.WriteAllText(config, node.ToJsonString());
        AssertNamesFile(config, Assert.Throws<ContinualMoEException>(() => LanguageModelFolder.Load(folder.Path)), "num_hidden_layers");
    }

    [Theory]
    [InlineData("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "tokenizer type 'Unigram' is not supported")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {}}, \"pre_tokenizer\": {\"type\": \"Metaspace\"}}", "'BPE' without byte-level pre-tokenization is not supported")]
    [InlineData("{\"model\": ", "not valid JSON")]
    public void AnUnknownOrBrokenTokenizerIsNamed(string tokenizerJson, string expected)
    {
        using var folder = new TempDirectory();
        File.WriteAllText(folder.File("tokenizer.json"), tokenizerJson);
        AssertNamesFile(folder.File("tokenizer.json"), Assert.Throws<ContinualMoEException>(() => LanguageModelTokenizer.Load(folder.Path)), expected);
    }
}
