using ContinualMoE.Experiments;

namespace ContinualMoE.Tests.Experiments;

/// <summary>A malformed run config is one line naming the file and the key at fault, never a stack trace or a silent
/// default.</summary>
public class RunConfigErrorTests
{
    [Theory]
    [InlineData("""{ "epochs": "three" }""", "epochs")]
    [InlineData("""{ "method": "smope", "learning_rate": [1] }""", "learning_rate")]
    [InlineData("""{ "epochz": 3 }""", "epochz")]
    [InlineData("""{ "tasks": 5, "batch_size": 1.5 }""", "batch_size")]
    [InlineData("""{ "seed": 1, "method_settings": 3 }""", "method_settings")]
    [InlineData("""{ "epochs": 3, }""", "configs/broken.json")]
    [InlineData("""{ "epochs": 3 """, "configs/broken.json")]
    [InlineData("", "configs/broken.json")]
    public void AMalformedConfigIsOneLineNamingTheFileAndTheKey(string json, string named)
    {
        var error = Assert.Throws<ContinualMoEException>(() => RunConfig.FromJson(json, "configs/broken.json"));
        Assert.StartsWith("configs/broken.json: ", error.Message);
        Assert.Contains(named, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void AWellFormedConfigReadsItsValues()
    {
        var config = RunConfig.FromJson("""{ "epochs": 2, "method": "ncm", "tasks": 4 }""", "ok.json");
        Assert.Equal((2, "ncm", 4), (config.Epochs, config.Method, config.Tasks));
    }
}
